// session.hpp -- one client connection's protocol state: the DEXT's user
// client holds one Session and hands it every request.
//
// The session does everything that does not need DriverKit: it checks each
// request, resolves a range by as many DMA commands as the range needs,
// keeps them prepared until the client completes the handle or goes away,
// pages segments out from a continuation, and hashes a range through a CPU
// mapping. The DriverKit calls themselves sit behind PlatformOps, which the
// DEXT implements with CreateMemoryDescriptorFromClient, IODMACommand and
// CreateMapping, and the host tests with a simulated memory.
//
// PlatformOps is a table of function pointers rather than a class with
// virtual functions so that a Session is trivially constructible: the DEXT
// keeps it in zeroed instance variables with no C++ runtime support beyond
// what DriverKit guarantees.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "pin_budget.hpp"
#include "protocol.hpp"
#include "segment_list.hpp"
#include "unimem_wire.h"

namespace unimem {
namespace dext {

// Segments one PrepareForDMA call returns at most (IODMACommand.iig).
constexpr uint32_t kSegmentsPerPrepare = 32;
// Prepared ranges one client may hold at a time.
constexpr size_t kMaxPrepared = 16;
// How often a truncated preparation is redone over a shorter length before
// the prepare fails (see Session::prepare_range).
constexpr unsigned kMaxShrinkAttempts = 4;

struct PlatformOps {
    // Wraps [client_va, client_va + length) of the client as a memory
    // descriptor the commands below prepare (*buffer, opaque here).
    Status (*create_buffer)(void *ctx, uint64_t client_va, uint64_t length, void **buffer);
    void (*release_buffer)(void *ctx, void *buffer);
    // Creates a DMA command and prepares [offset, offset + length) of
    // buffer. *count is the capacity of segments on entry (always
    // kSegmentsPerPrepare) and the number filled on return. The command
    // stays prepared until complete_command.
    Status (*prepare_command)(void *ctx, void *buffer, uint64_t offset, uint64_t length,
                              AddressSegment *segments, uint32_t *count, void **command);
    // Completes (unwires, unmaps) and releases a command.
    void (*complete_command)(void *ctx, void *command);
    // Maps buffer into this process for reading: *bytes, *length.
    Status (*map_buffer)(void *ctx, void *buffer, const uint8_t **bytes, uint64_t *length,
                         void **mapping);
    void (*unmap_buffer)(void *ctx, void *mapping);
};

struct SessionConfig {
    Limits limits;
    uint32_t address_kind;       // UNIMEM_ADDRESS_KIND_* of the commands' addresses
    const char *server_version;  // reported by the handshake
    // The driver-wide limit on prepared bytes, shared by every session of
    // the driver (required; a prepare without one fails). Each prepare
    // takes its length from it before any platform call and gives it back
    // when the range is completed, the session closes, or the prepare
    // fails; a prepare that does not fit is refused with
    // kIOReturnNoResources.
    PinBudget *budget;
};

// One prepared range. A slot with handle 0 is free.
struct Prepared {
    uint64_t handle;
    uint64_t length;
    uint32_t surface_id;
    // Bytes taken from the driver-wide budget for this slot.
    uint64_t budgeted;
    void *buffer;
    void **commands;
    size_t command_count;
    size_t command_capacity;
    SegmentList segments;
};

// The largest reply and the buffer a caller passes to Session::handle.
union ReplyBuffer {
    unimem_header error;
    unimem_handshake_reply handshake;
    unimem_segments_reply segments;
    unimem_complete_reply complete;
    unimem_checksum_reply checksum;
};
static_assert(sizeof(ReplyBuffer) == UNIMEM_MAX_MESSAGE, "replies fit the inband limit");

class Session {
  public:
    // Starts a session; memory for the session itself may be zeroed rather
    // than constructed.
    void init(const SessionConfig &config, const PlatformOps *ops, void *ctx);

    // Handles one request. Always writes a reply into *reply and its size to
    // *reply_length: the selector's reply on success, a bare header carrying
    // the status otherwise. Returns that status.
    Status handle(uint16_t selector, const void *request, size_t request_length,
                  ReplyBuffer *reply, size_t *reply_length);

    // Completes and releases every prepared range: the client closed its
    // connection, died, or the driver is stopping.
    void close();

    size_t prepared_count() const;
    // The prepared range with this handle, or nullptr.
    const Prepared *find(uint64_t handle) const;

  private:
    Status handshake(const void *request, size_t length, ReplyBuffer *reply, size_t *out);
    Status prepare(const void *request, size_t length, ReplyBuffer *reply, size_t *out);
    Status segments(const void *request, size_t length, ReplyBuffer *reply, size_t *out);
    Status complete(const void *request, size_t length, ReplyBuffer *reply, size_t *out);
    Status checksum(const void *request, size_t length, ReplyBuffer *reply, size_t *out);

    Status prepare_range(Prepared *p);
    Status keep_command(Prepared *p, void *command);
    void release_prepared(Prepared *p);
    Prepared *find_mut(uint64_t handle);

    SessionConfig config_;
    const PlatformOps *ops_;
    void *ctx_;
    bool handshaken_;
    uint64_t next_handle_;
    Prepared slots_[kMaxPrepared];
};

}  // namespace dext
}  // namespace unimem
