// Stand-in for the iig output of DriverKit's IOMemoryMap.iig, for the
// syntax check only (xnu-11417.101.15 iokit/DriverKit/IOMemoryMap.iig).
#pragma once

#include <DriverKit/OSObject.h>

// xnu-11417.101.15 iokit/DriverKit/IOMemoryMap.iig: LOCALONLY accessors.
class IOMemoryMap : public OSObject {
  public:
    uint64_t GetAddress();
    uint64_t GetLength();
    uint64_t GetOffset();
};

extern OSMetaClass *gIOMemoryMapMetaClass;
