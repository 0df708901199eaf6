// CybMemDriver.cpp -- the service: start, register, make user clients.
//
// The service matches IOUserResources (personality in Info.plist) and has
// no device of its own. Its user clients create their IODMACommands for
// this service; it has no "iommu-parent", so the commands get the system
// mapper's addresses if the platform has one, else CPU physical addresses,
// and the DEXT reports them as DmaUnresolved (see facts, section 3).

#include <DriverKit/IOLib.h>
#include <DriverKit/IOUserClient.h>
#include <DriverKit/IOUserServer.h>
#include <DriverKit/OSCollections.h>

#include "CybMemDriver.h"
#include "CybMemLog.h"

struct CybMemDriver_IVars {
    uint32_t clients_created;
};

bool CybMemDriver::init()
{
    if (!super::init()) {
        return false;
    }
    ivars = IONewZero(CybMemDriver_IVars, 1);
    return ivars != nullptr;
}

void CybMemDriver::free()
{
    IOSafeDeleteNULL(ivars, CybMemDriver_IVars, 1);
    super::free();
}

kern_return_t IMPL(CybMemDriver, Start)
{
    kern_return_t ret = Start(provider, SUPERDISPATCH);
    if (ret != kIOReturnSuccess) {
        CYBMEM_ERR("Start: super Start failed 0x%x", ret);
        return ret;
    }
    // Publish the service so IOServiceNameMatching("CybMemDriver") finds it.
    ret = RegisterService();
    if (ret != kIOReturnSuccess) {
        CYBMEM_ERR("Start: RegisterService failed 0x%x", ret);
        // The superclass started: stop it again before failing.
        Stop(provider, SUPERDISPATCH);
        return ret;
    }
    CYBMEM_LOG("started; DMA commands use this service (no iommu-parent): "
               "addresses are reported as dma_unresolved");
    return kIOReturnSuccess;
}

kern_return_t IMPL(CybMemDriver, Stop)
{
    // User clients are children of this service and are stopped first;
    // each releases its prepared ranges in its own Stop.
    CYBMEM_LOG("stopping after %u client(s)", ivars->clients_created);
    return Stop(provider, SUPERDISPATCH);
}

kern_return_t IMPL(CybMemDriver, NewUserClient)
{
    if (type != 0) {
        CYBMEM_ERR("NewUserClient: unknown type %u", type);
        return kIOReturnBadArgument;
    }
    IOService *client = nullptr;
    // The properties live inside this personality (Info.plist,
    // UserClientProperties): IOClass IOUserUserClient, IOUserClass
    // CybMemUserClient.
    kern_return_t ret = Create(this, "UserClientProperties", &client);
    if (ret != kIOReturnSuccess) {
        CYBMEM_ERR("NewUserClient: Create failed 0x%x", ret);
        return ret;
    }
    *userClient = OSDynamicCast(IOUserClient, client);
    if (*userClient == nullptr) {
        CYBMEM_ERR("NewUserClient: created object is not an IOUserClient");
        client->release();
        return kIOReturnError;
    }
    ivars->clients_created++;
    CYBMEM_LOG("NewUserClient: client %u", ivars->clients_created);
    return kIOReturnSuccess;
}
