// Stand-in for the iig output of DriverKit's IODMACommand.iig, for the
// syntax check only. Declarations from xnu-11417.101.15
// iokit/DriverKit/IODMACommand.iig; C++ form as in iig's output in
// MacOSX11.3.sdk Kernel.framework/Headers/DriverKit/IODMACommand.h (array
// parameters become pointers, RPC methods gain `supermethod`).
#pragma once

#include <DriverKit/IOMemoryDescriptor.h>
#include <DriverKit/IOService.h>

// xnu-11417.101.15 iokit/DriverKit/IODMACommand.iig
enum {
    kIODMACommandCreateNoOptions = 0,
};
enum {
    kIODMACommandPrepareForDMANoOptions = 0,
};
enum {
    kIODMACommandCompleteDMANoOptions = 0,
};
enum {
    kIODMACommandSpecificationNoOptions = 0,
};

// xnu-11417.101.15 iokit/DriverKit/IODMACommand.iig
struct IODMACommandSpecification {
    uint64_t options;
    uint64_t maxAddressBits;
    uint64_t _resv[16];
};

// xnu-11417.101.15 iokit/DriverKit/IODMACommand.iig
class IODMACommand : public OSObject {
  public:
    // static kern_return_t Create(IOService *device, uint64_t options,
    //     const IODMACommandSpecification *specification, IODMACommand **command);
    static kern_return_t Create(IOService *device, uint64_t options,
                                const IODMACommandSpecification *specification,
                                IODMACommand **command);
    // virtual kern_return_t PrepareForDMA(uint64_t options, IOMemoryDescriptor *memory,
    //     uint64_t offset, uint64_t length, uint64_t *flags, uint32_t *segmentsCount,
    //     IOAddressSegment segments[32]);
    kern_return_t PrepareForDMA(uint64_t options, IOMemoryDescriptor *memory, uint64_t offset,
                                uint64_t length, uint64_t *flags, uint32_t *segmentsCount,
                                IOAddressSegment *segments, OSDispatchMethod supermethod = NULL);
    // virtual kern_return_t CompleteDMA(uint64_t options);
    kern_return_t CompleteDMA(uint64_t options, OSDispatchMethod supermethod = NULL);
    // virtual kern_return_t GetPreparation(uint64_t *offset, uint64_t *length,
    //     IOMemoryDescriptor **memory);
    kern_return_t GetPreparation(uint64_t *offset, uint64_t *length, IOMemoryDescriptor **memory,
                                 OSDispatchMethod supermethod = NULL);
};

extern OSMetaClass *gIODMACommandMetaClass;
