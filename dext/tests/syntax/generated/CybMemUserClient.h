// Hand-written stand-in for what iig generates from
// dext/CybMemUserClient.iig, for the syntax check only. Shape as iig emits
// it for a user client with the same overrides (SoftFido2UserClient.h, iig
// DriverKit-73.100.4): Start/Stop as Name_Impl, init/free/ExternalMethod as
// virtual overrides, and the LOCALONLY non-virtual HandleRequest as a plain
// public member (as IOMemoryDescriptor::GetLength appears in iig's output).
// check_iig.py keeps it in step with the .iig.
#pragma once

#include <DriverKit/IOUserClient.h>

#define CybMemUserClient_Start_Args IOService *provider
#define CybMemUserClient_Stop_Args IOService *provider

extern OSMetaClass *gCybMemUserClientMetaClass;

class CybMemUserClientInterface : public OSInterface {};

struct CybMemUserClient_IVars;
struct CybMemUserClient_LocalIVars;

class CybMemUserClient : public IOUserClient, public CybMemUserClientInterface {
  public:
    union {
        CybMemUserClient_IVars *ivars;
        CybMemUserClient_LocalIVars *lvars;
    };

    using super = IOUserClient;

    // CybMemUserClient_Methods
    virtual kern_return_t Dispatch(const IORPC rpc) override;
    static kern_return_t _Dispatch(CybMemUserClient *self, const IORPC rpc);

    kern_return_t HandleRequest(IOUserClientMethodArguments *arguments);

  protected:
    kern_return_t Start_Impl(IOService_Start_Args);
    kern_return_t Stop_Impl(IOService_Stop_Args);

    // CybMemUserClient_VirtualMethods
  public:
    virtual bool init() override;
    virtual void free() override;
    virtual kern_return_t ExternalMethod(uint64_t selector, IOUserClientMethodArguments *arguments,
                                         const IOUserClientMethodDispatch *dispatch,
                                         OSObject *target, void *reference) override;
};
