// Stand-in for the iig output of DriverKit's IOMemoryDescriptor.iig, for
// the syntax check only. Declarations from xnu-11417.101.15
// iokit/DriverKit/IOMemoryDescriptor.iig; their C++ form (the trailing
// `OSDispatchMethod supermethod = NULL` of RPC methods, LOCALONLY methods
// as plain members) as in iig's output in MacOSX11.3.sdk
// Kernel.framework/Headers/DriverKit/IOMemoryDescriptor.h.
#pragma once

#include <DriverKit/OSObject.h>

class IOService;
class IOMemoryMap;

// xnu-11417.101.15 iokit/DriverKit/IOMemoryDescriptor.iig
enum {
    kIOMemoryDirectionNone = 0x00000000,
    kIOMemoryDirectionIn = 0x00000001,
    kIOMemoryDirectionOut = 0x00000002,
    kIOMemoryDirectionOutIn = kIOMemoryDirectionIn | kIOMemoryDirectionOut,
    kIOMemoryDirectionInOut = kIOMemoryDirectionOutIn,
    kIOMemoryDisableCopyOnWrite = 0x00000010,
};

// xnu-11417.101.15 iokit/DriverKit/IOMemoryDescriptor.iig
enum {
    kIOMemoryMapFixedAddress = 0x00000001,
    kIOMemoryMapReadOnly = 0x00000002,
    kIOMemoryMapCacheModeDefault = 0x00000000,
    kIOMemoryMapCacheModeInhibit = 0x00000100,
    kIOMemoryMapCacheModeCopyback = 0x00000200,
    kIOMemoryMapCacheModeWriteThrough = 0x00000400,
};

// xnu-11417.101.15 iokit/DriverKit/IOMemoryDescriptor.iig
struct IOAddressSegment {
    uint64_t address;
    uint64_t length;
};

// xnu-11417.101.15 iokit/DriverKit/IOMemoryDescriptor.iig
class IOMemoryDescriptor : public OSObject {
  public:
    // LOCALONLY
    kern_return_t GetLength(uint64_t *returnLength);
    // virtual kern_return_t CreateMapping(uint64_t options, uint64_t address,
    //     uint64_t offset, uint64_t length, uint64_t alignment, IOMemoryMap **map);
    kern_return_t CreateMapping(uint64_t options, uint64_t address, uint64_t offset,
                                uint64_t length, uint64_t alignment, IOMemoryMap **map,
                                OSDispatchMethod supermethod = NULL);
    static kern_return_t _Dispatch(IOMemoryDescriptor *self, const IORPC rpc);
};

extern OSMetaClass *gIOMemoryDescriptorMetaClass;
