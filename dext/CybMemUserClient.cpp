// CybMemUserClient.cpp -- one client connection of CybMemDriver.
//
// ExternalMethod hands every selector to IOUserClient's own dispatcher with
// a table entry that demands the exact request size and the exact reply
// capacity, so a short or long struct is refused (kIOReturnBadArgument)
// before any of our code runs. HandleRequest then passes the bytes to the
// portable Session (portable/session.cpp), which checks the request again,
// resolves ranges through the platform calls below and builds the reply;
// failures travel back as a bare unimem header carrying the IOReturn.
//
// The platform calls: a range of the client is wrapped with
// CreateMemoryDescriptorFromClient (read-write, copy-on-write disabled so a
// mapping sees the client's live bytes); each PrepareForDMA runs on a new
// IODMACommand made for the CybMemDriver service; commands stay prepared
// until the client completes the handle, closes the connection or the
// driver stops; a checksum reads the descriptor through CreateMapping.
//
// ExternalMethod and Stop both run on this object's default queue (no
// other queue is created), so the session needs no lock. The pin budget is
// shared with every other connection, whose queues run in parallel: it is
// changed only atomically (portable/pin_budget.cpp).

#include <DriverKit/IOBufferMemoryDescriptor.h>
#include <DriverKit/IODMACommand.h>
#include <DriverKit/IOLib.h>
#include <DriverKit/IOMemoryDescriptor.h>
#include <DriverKit/IOMemoryMap.h>
#include <DriverKit/IOUserClient.h>
#include <DriverKit/OSCollections.h>
#include <string.h>

#include "CybMemDriver.h"
#include "CybMemLog.h"
#include "CybMemUserClient.h"
#include "portable/session.hpp"
#include "unimem_wire.h"

using unimem::dext::AddressSegment;
using unimem::dext::PinBudget;
using unimem::dext::PlatformOps;
using unimem::dext::ReplyBuffer;
using unimem::dext::Session;
using unimem::dext::SessionConfig;
using unimem::dext::Status;

// Largest range one prepare accepts.
static constexpr uint64_t kMaxPrepareBytes = 1ull << 30;

// Bytes all connections together may keep prepared (wired) at once. One
// connection may hold at most 16 ranges of kMaxPrepareBytes; without this
// limit, more connections could wire any amount of memory.
static constexpr uint64_t kMaxPinnedBytes = 4ull << 30;

// The driver-wide budget. The DEXT process hosts exactly one CybMemDriver
// (one personality matching IOUserResources, one IOUserServerName), and
// every user client of it lives in this process, so a process-wide object
// is the driver-wide one (were there ever more, the limit would only be
// stricter). Constant-initialized: no static constructor runs.
static PinBudget gPinBudget(kMaxPinnedBytes);

struct CybMemUserClient_IVars {
    CybMemUserClient *self;
    // The service the DMA commands are created for (our provider).
    IOService *dma_device;
    Session session;  // zeroed by IONewZero, then init() in Start
    bool started;
};

static_assert(sizeof(IOAddressSegment) == sizeof(AddressSegment),
              "AddressSegment mirrors IOAddressSegment");

// ---- Platform calls behind the portable session --------------------------

static Status CreateBuffer(void *ctx, uint64_t va, uint64_t length, void **buffer)
{
    auto *iv = static_cast<CybMemUserClient_IVars *>(ctx);
    IOAddressSegment range = {va, length};
    IOMemoryDescriptor *md = nullptr;
    kern_return_t ret = iv->self->CreateMemoryDescriptorFromClient(
        kIOMemoryDirectionOutIn | kIOMemoryDisableCopyOnWrite, 1, &range, &md);
    if (ret != kIOReturnSuccess || md == nullptr) {
        CYBMEM_ERR("CreateMemoryDescriptorFromClient(va 0x%llx, len 0x%llx) failed 0x%x",
                   va, length, ret);
        return ret != kIOReturnSuccess ? static_cast<Status>(ret) : UNIMEM_IO_RETURN_NO_MEMORY;
    }
    *buffer = md;
    return UNIMEM_IO_RETURN_SUCCESS;
}

static void ReleaseBuffer(void *, void *buffer)
{
    static_cast<IOMemoryDescriptor *>(buffer)->release();
}

static Status PrepareCommand(void *ctx, void *buffer, uint64_t offset, uint64_t length,
                             AddressSegment *segments, uint32_t *count, void **command)
{
    auto *iv = static_cast<CybMemUserClient_IVars *>(ctx);
    auto *md = static_cast<IOMemoryDescriptor *>(buffer);

    IODMACommandSpecification spec;
    memset(&spec, 0, sizeof(spec));
    spec.options = 0;
    spec.maxAddressBits = 64;
    IODMACommand *cmd = nullptr;
    kern_return_t ret = IODMACommand::Create(iv->dma_device, 0, &spec, &cmd);
    if (ret != kIOReturnSuccess || cmd == nullptr) {
        CYBMEM_ERR("IODMACommand::Create failed 0x%x", ret);
        return ret != kIOReturnSuccess ? static_cast<Status>(ret) : UNIMEM_IO_RETURN_NO_MEMORY;
    }

    IOAddressSegment segs[unimem::dext::kSegmentsPerPrepare];
    memset(segs, 0, sizeof(segs));
    uint64_t flags = 0;
    // In: the capacity (0 would be kIOReturnBadArgument). Out: the count.
    uint32_t n = *count;
    ret = cmd->PrepareForDMA(0, md, offset, length, &flags, &n, segs);
    if (ret != kIOReturnSuccess) {
        CYBMEM_ERR("PrepareForDMA(offset 0x%llx, len 0x%llx) failed 0x%x", offset, length, ret);
        cmd->release();
        return static_cast<Status>(ret);
    }
    if (n > *count) {
        CYBMEM_ERR("PrepareForDMA returned %u segments for a capacity of %u", n, *count);
        cmd->CompleteDMA(0);
        cmd->release();
        return UNIMEM_IO_RETURN_ERROR;
    }
    for (uint32_t i = 0; i < n; i++) {
        segments[i].address = segs[i].address;
        segments[i].length = segs[i].length;
    }
    *count = n;
    *command = cmd;
    return UNIMEM_IO_RETURN_SUCCESS;
}

static void CompleteCommand(void *, void *command)
{
    auto *cmd = static_cast<IODMACommand *>(command);
    kern_return_t ret = cmd->CompleteDMA(0);
    if (ret != kIOReturnSuccess) {
        CYBMEM_ERR("CompleteDMA failed 0x%x", ret);
    }
    cmd->release();
}

static Status MapBuffer(void *, void *buffer, const uint8_t **bytes, uint64_t *length,
                        void **mapping)
{
    auto *md = static_cast<IOMemoryDescriptor *>(buffer);
    IOMemoryMap *map = nullptr;
    kern_return_t ret = md->CreateMapping(kIOMemoryMapReadOnly, 0, 0, 0, 0, &map);
    if (ret != kIOReturnSuccess || map == nullptr) {
        CYBMEM_ERR("CreateMapping failed 0x%x", ret);
        return ret != kIOReturnSuccess ? static_cast<Status>(ret) : UNIMEM_IO_RETURN_VM_ERROR;
    }
    *bytes = reinterpret_cast<const uint8_t *>(map->GetAddress());
    *length = map->GetLength();
    *mapping = map;
    return UNIMEM_IO_RETURN_SUCCESS;
}

static void UnmapBuffer(void *, void *mapping)
{
    if (mapping != nullptr) {
        static_cast<IOMemoryMap *>(mapping)->release();
    }
}

static const PlatformOps kPlatformOps = {
    CreateBuffer, ReleaseBuffer, PrepareCommand, CompleteCommand, MapBuffer, UnmapBuffer,
};

// ---- The dispatch table --------------------------------------------------

static kern_return_t DispatchRequest(OSObject *target, void *, IOUserClientMethodArguments *args)
{
    CybMemUserClient *self = OSDynamicCast(CybMemUserClient, target);
    if (self == nullptr) {
        return kIOReturnBadArgument;
    }
    return self->HandleRequest(args);
}

static const char *const kNames[UNIMEM_SELECTOR_COUNT] = {
    "handshake", "prepare", "segments", "complete", "checksum",
};

// One entry per selector: no completion, no scalars, the exact request
// size in, and the exact capacity of the selector's reply out (an error
// reply is a 16-byte header, which fits any of them).
static const IOUserClientMethodDispatch kMethods[UNIMEM_SELECTOR_COUNT] = {
    {DispatchRequest, 0, 0, sizeof(unimem_handshake_request), 0, sizeof(unimem_handshake_reply)},
    {DispatchRequest, 0, 0, sizeof(unimem_prepare_request), 0, sizeof(unimem_segments_reply)},
    {DispatchRequest, 0, 0, sizeof(unimem_segments_request), 0, sizeof(unimem_segments_reply)},
    {DispatchRequest, 0, 0, sizeof(unimem_complete_request), 0, sizeof(unimem_complete_reply)},
    {DispatchRequest, 0, 0, sizeof(unimem_checksum_request), 0, sizeof(unimem_checksum_reply)},
};

// ---- The user client -----------------------------------------------------

bool CybMemUserClient::init()
{
    if (!super::init()) {
        return false;
    }
    ivars = IONewZero(CybMemUserClient_IVars, 1);
    return ivars != nullptr;
}

void CybMemUserClient::free()
{
    if (ivars != nullptr && ivars->started) {
        // Normally done in Stop; this covers a client that never got there.
        // Say so: it means Stop was skipped, and DMA commands were still
        // prepared (wired) until now.
        CYBMEM_ERR("free: user client was not stopped; completing %zu prepared range(s) now",
                   ivars->session.prepared_count());
        ivars->session.close();
        ivars->started = false;
    }
    IOSafeDeleteNULL(ivars, CybMemUserClient_IVars, 1);
    super::free();
}

kern_return_t IMPL(CybMemUserClient, Start)
{
    kern_return_t ret = Start(provider, SUPERDISPATCH);
    if (ret != kIOReturnSuccess) {
        CYBMEM_ERR("user client Start failed 0x%x", ret);
        return ret;
    }
    if (OSDynamicCast(CybMemDriver, provider) == nullptr) {
        CYBMEM_ERR("user client provider is not CybMemDriver");
        // The superclass started: stop it again before failing.
        Stop(provider, SUPERDISPATCH);
        return kIOReturnBadArgument;
    }
    ivars->self = this;
    ivars->dma_device = provider;
    SessionConfig config;
    // IOVMPageSize (DriverKit/IOLib.h): the VM page size the OS reports,
    // 16 KiB on Apple Silicon; never a literal.
    config.limits.page_size = IOVMPageSize;
    config.limits.max_prepare_bytes = kMaxPrepareBytes;
    // The DMA device has no iommu-parent: system mapper or physical, and
    // the DEXT cannot tell which. Never claim Physical or Iova here.
    config.address_kind = UNIMEM_ADDRESS_KIND_DMA_UNRESOLVED;
    config.server_version = CYBMEM_SERVER_VERSION;
    config.budget = &gPinBudget;
    ivars->session.init(config, &kPlatformOps, ivars);
    ivars->started = true;
    CYBMEM_LOG("user client started (page size 0x%llx, driver-wide pin limit 0x%llx, 0x%llx in use)",
               config.limits.page_size, gPinBudget.limit(), gPinBudget.in_use());
    return kIOReturnSuccess;
}

kern_return_t IMPL(CybMemUserClient, Stop)
{
    // The client closed its connection, exited or crashed, or the driver
    // is stopping: complete every command and release every descriptor.
    if (ivars->started) {
        CYBMEM_LOG("user client stopping; releasing %zu prepared range(s)",
                   ivars->session.prepared_count());
        ivars->session.close();
        ivars->started = false;
    }
    return Stop(provider, SUPERDISPATCH);
}

kern_return_t CybMemUserClient::ExternalMethod(uint64_t selector,
                                               IOUserClientMethodArguments *arguments,
                                               const IOUserClientMethodDispatch *,
                                               OSObject *, void *)
{
    if (selector >= UNIMEM_SELECTOR_COUNT) {
        CYBMEM_ERR("unknown selector %llu", selector);
        return kIOReturnUnsupported;
    }
    // The base class checks the sizes in kMethods[selector] and calls
    // DispatchRequest only if they match exactly.
    return super::ExternalMethod(selector, arguments, &kMethods[selector], this, nullptr);
}

kern_return_t CybMemUserClient::HandleRequest(IOUserClientMethodArguments *args)
{
    // Every unimem struct is at most 4096 bytes and travels inband, so the
    // descriptors are never set for a client that speaks the protocol.
    if (args->structureInput == nullptr || args->structureOutputDescriptor != nullptr) {
        CYBMEM_ERR("selector %llu: expected inband structs", args->selector);
        return kIOReturnBadArgument;
    }
    if (!ivars->started) {
        return kIOReturnNotReady;
    }
    const uint16_t selector = static_cast<uint16_t>(args->selector);
    ReplyBuffer reply;
    size_t reply_length = 0;
    Status st = ivars->session.handle(selector, args->structureInput->getBytesNoCopy(),
                                      args->structureInput->getLength(), &reply, &reply_length);
    if (st == UNIMEM_IO_RETURN_NO_RESOURCES && selector == UNIMEM_SELECTOR_PREPARE) {
        CYBMEM_ERR("prepare refused: %zu range(s) held by this connection, 0x%llx of 0x%llx "
                   "bytes prepared driver-wide",
                   ivars->session.prepared_count(), gPinBudget.in_use(), gPinBudget.limit());
    } else if (st != UNIMEM_IO_RETURN_SUCCESS) {
        CYBMEM_ERR("%{public}s failed 0x%x", kNames[selector], st);
    }
    args->structureOutput = OSData::withBytes(&reply, reply_length);
    return args->structureOutput != nullptr ? kIOReturnSuccess : kIOReturnNoMemory;
}
