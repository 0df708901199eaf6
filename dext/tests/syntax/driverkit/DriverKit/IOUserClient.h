// Stand-in for the iig output of DriverKit's IOUserClient.iig, for the
// syntax check only. Declarations from xnu-11417.101.15
// iokit/DriverKit/IOUserClient.iig; C++ form as in iig's output in
// MacOSX11.3.sdk Kernel.framework/Headers/DriverKit/IOUserClient.h.
#pragma once

#include <DriverKit/IOMemoryDescriptor.h>
#include <DriverKit/IOService.h>

// xnu-11417.101.15 iokit/DriverKit/IOUserClient.iig
enum {
    kIOUserClientScalarArrayCountMax = 16,
};
enum {
    kIOUserClientVariableStructureSize = 0xffffffff,
};
enum {
    kIOUserClientMethodArgumentsCurrentVersion = 2,
};

// xnu-11417.101.15 iokit/DriverKit/IOUserClient.iig
struct IOUserClientMethodArguments {
    uint64_t version;
    uint64_t selector;
    OSAction *completion;
    const uint64_t *scalarInput;
    uint32_t scalarInputCount;
    OSData *structureInput;
    IOMemoryDescriptor *structureInputDescriptor;
    uint64_t *scalarOutput;
    uint32_t scalarOutputCount;
    OSData *structureOutput;
    IOMemoryDescriptor *structureOutputDescriptor;
    uint64_t structureOutputMaximumSize;
    uint64_t __reserved[30];
};

// xnu-11417.101.15 iokit/DriverKit/IOUserClient.iig
typedef kern_return_t (*IOUserClientMethodFunction)(OSObject *target, void *reference,
                                                    IOUserClientMethodArguments *arguments);

// xnu-11417.101.15 iokit/DriverKit/IOUserClient.iig
struct IOUserClientMethodDispatch {
    IOUserClientMethodFunction function;
    uint32_t checkCompletionExists;
    uint32_t checkScalarInputCount;
    uint32_t checkStructureInputSize;
    uint32_t checkScalarOutputCount;
    uint32_t checkStructureOutputSize;
};

// xnu-11417.101.15 iokit/DriverKit/IOUserClient.iig
class IOUserClient : public IOService {
  public:
    using super = IOService;

    virtual bool init() override;
    virtual void free() override;
    static kern_return_t _Dispatch(IOUserClient *self, const IORPC rpc);

    // virtual kern_return_t ExternalMethod(uint64_t selector,
    //     IOUserClientMethodArguments *arguments, const IOUserClientMethodDispatch *dispatch,
    //     OSObject *target, void *reference) LOCALONLY;
    virtual kern_return_t ExternalMethod(uint64_t selector,
                                         IOUserClientMethodArguments *arguments,
                                         const IOUserClientMethodDispatch *dispatch,
                                         OSObject *target, void *reference);

    // virtual kern_return_t CreateMemoryDescriptorFromClient(
    //     uint64_t memoryDescriptorCreateOptions, uint32_t segmentsCount,
    //     const IOAddressSegment segments[32], IOMemoryDescriptor **memory);
    kern_return_t CreateMemoryDescriptorFromClient(uint64_t memoryDescriptorCreateOptions,
                                                   uint32_t segmentsCount,
                                                   const IOAddressSegment *segments,
                                                   IOMemoryDescriptor **memory,
                                                   OSDispatchMethod supermethod = NULL);
};

extern OSMetaClass *gIOUserClientMetaClass;
