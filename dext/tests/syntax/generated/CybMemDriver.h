// Hand-written stand-in for what iig generates from dext/CybMemDriver.iig
// (DerivedSources/<bundle id>/CybMemDriver.h), for the syntax check only.
// Its shape follows iig's output for a driver with the same overrides
// (SoftFido2Driver.h, iig DriverKit-73.100.4; facts/driverkit.md section 4):
// RPC overrides become protected Name_Impl(Base_Name_Args) members that
// IMPL(CybMemDriver, Name) defines; init and free stay virtual overrides;
// `ivars` points at the CybMemDriver_IVars the .cpp defines; `super` is
// the base class. check_iig.py keeps it in step with the .iig.
#pragma once

#include <DriverKit/IOService.h>

class IOUserClient;

#define CybMemDriver_Start_Args IOService *provider
#define CybMemDriver_Stop_Args IOService *provider
#define CybMemDriver_NewUserClient_Args uint32_t type, IOUserClient **userClient

extern OSMetaClass *gCybMemDriverMetaClass;

class CybMemDriverInterface : public OSInterface {};

struct CybMemDriver_IVars;
struct CybMemDriver_LocalIVars;

class CybMemDriver : public IOService, public CybMemDriverInterface {
  public:
    union {
        CybMemDriver_IVars *ivars;
        CybMemDriver_LocalIVars *lvars;
    };

    using super = IOService;

    // CybMemDriver_Methods
    virtual kern_return_t Dispatch(const IORPC rpc) override;
    static kern_return_t _Dispatch(CybMemDriver *self, const IORPC rpc);

  protected:
    kern_return_t Start_Impl(IOService_Start_Args);
    kern_return_t Stop_Impl(IOService_Stop_Args);
    kern_return_t NewUserClient_Impl(IOService_NewUserClient_Args);

    // CybMemDriver_VirtualMethods
  public:
    virtual bool init() override;
    virtual void free() override;
};
