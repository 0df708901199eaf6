// Stand-in for the iig output of DriverKit's IOUserServer.iig, for the
// syntax check only. The DEXT includes it and uses nothing from it.
#pragma once

#include <DriverKit/IOService.h>
