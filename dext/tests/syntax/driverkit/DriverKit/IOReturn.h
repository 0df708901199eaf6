// Stand-in for DriverKit's IOReturn.h, for the syntax check only
// (dext/tests/syntax/check.sh): the types and the codes the DEXT uses.
// Values: xnu-11417.101.15 iokit/IOKit/IOReturn.h, iokit_common_err(x) =
// 0xE0000000 | x (as listed in facts/driverkit.md section 7).
#pragma once

#include <stddef.h>
#include <stdint.h>

// xnu-11417.101.15 osfmk/mach/kern_return.h (DriverKit: the same int)
typedef int kern_return_t;
// xnu-11417.101.15 iokit/IOKit/IOReturn.h
typedef kern_return_t IOReturn;

// xnu-11417.101.15 iokit/IOKit/IOReturn.h (macros there too)
#define kIOReturnSuccess ((IOReturn)0)
#define kIOReturnError ((IOReturn)0xE00002BC)
#define kIOReturnNoMemory ((IOReturn)0xE00002BD)
#define kIOReturnNoResources ((IOReturn)0xE00002BE)
#define kIOReturnBadArgument ((IOReturn)0xE00002C2)
#define kIOReturnUnsupported ((IOReturn)0xE00002C7)
#define kIOReturnVMError ((IOReturn)0xE00002C8)
#define kIOReturnNotReady ((IOReturn)0xE00002D8)
#define kIOReturnNotPermitted ((IOReturn)0xE00002E2)
