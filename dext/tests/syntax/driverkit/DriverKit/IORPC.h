// Stand-in for DriverKit's IORPC.h, for the syntax check only: the types a
// generated class and SUPERDISPATCH name. No bodies.
#pragma once

#include <DriverKit/IOReturn.h>

class OSMetaClassBase;
struct IORPCMessageMach;

// xnu-11417.101.15 iokit/DriverKit/IORPC.h
struct IORPC {
    IORPCMessageMach *message;
    IORPCMessageMach *reply;
    uint32_t sendSize;
    uint32_t replySize;
};

// xnu-11417.101.15 iokit/DriverKit/IORPC.h
typedef kern_return_t (*OSDispatchMethod)(OSMetaClassBase *self, const IORPC rpc);
