// Stand-in for the iig output of DriverKit's IOService.iig, for the syntax
// check only. Declarations from xnu-11417.101.15
// iokit/DriverKit/IOService.iig; C++ form as in iig's output in
// MacOSX11.3.sdk Kernel.framework/Headers/DriverKit/IOService.h: the RPC
// methods are non-virtual and take a trailing `supermethod`, a subclass
// overrides them through Name_Impl(IOService_Name_Args).
#pragma once

#include <DriverKit/OSObject.h>

class IOUserClient;

// xnu-11417.101.15 iokit/DriverKit/IOService.iig
typedef char IOServiceName[128];
typedef char IOPropertyName[128];

// The argument lists iig emits for the methods a subclass may override.
#define IOService_Start_Args IOService *provider
#define IOService_Stop_Args IOService *provider
#define IOService_NewUserClient_Args uint32_t type, IOUserClient **userClient

// xnu-11417.101.15 iokit/DriverKit/IOService.iig
class IOService : public OSObject {
  public:
    using super = OSObject;

    virtual bool init() override;
    virtual void free() override;
    virtual kern_return_t Dispatch(const IORPC rpc) override;
    static kern_return_t _Dispatch(IOService *self, const IORPC rpc);

    // virtual kern_return_t Start(IOService *provider) LOCAL;
    kern_return_t Start(IOService *provider, OSDispatchMethod supermethod = NULL);
    // virtual kern_return_t Stop(IOService *provider) LOCAL;
    kern_return_t Stop(IOService *provider, OSDispatchMethod supermethod = NULL);
    // virtual kern_return_t RegisterService();
    kern_return_t RegisterService(OSDispatchMethod supermethod = NULL);
    // virtual kern_return_t NewUserClient(uint32_t type, IOUserClient **userClient);
    kern_return_t NewUserClient(uint32_t type, IOUserClient **userClient,
                                OSDispatchMethod supermethod = NULL);
    // virtual kern_return_t Create(IOService *provider, const IOPropertyName propertiesKey,
    //     IOService **result) LOCAL;
    kern_return_t Create(IOService *provider, const IOPropertyName propertiesKey,
                         IOService **result, OSDispatchMethod supermethod = NULL);
    // virtual kern_return_t Terminate(uint64_t options);
    kern_return_t Terminate(uint64_t options, OSDispatchMethod supermethod = NULL);

  protected:
    kern_return_t Start_Impl(IOService_Start_Args);
    kern_return_t Stop_Impl(IOService_Stop_Args);
};

extern OSMetaClass *gIOServiceMetaClass;
