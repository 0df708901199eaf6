// Stand-in for the iig output of DriverKit's IOBufferMemoryDescriptor.iig,
// for the syntax check only. The DEXT includes it but creates no buffer.
#pragma once

#include <DriverKit/IOMemoryDescriptor.h>

// xnu-11417.101.15 iokit/DriverKit/IOBufferMemoryDescriptor.iig
class IOBufferMemoryDescriptor : public IOMemoryDescriptor {
  public:
    static kern_return_t Create(uint64_t options, uint64_t capacity, uint64_t alignment,
                                IOBufferMemoryDescriptor **memory);
};
