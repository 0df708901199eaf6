// Stand-in for DriverKit's OSCollections.h, for the syntax check only: the
// real one includes every collection header; the DEXT uses OSData.
#pragma once

#include <DriverKit/OSData.h>
