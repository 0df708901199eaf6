// Stand-in for DriverKit's OSData.h (SDK header, not in xnu), for the
// syntax check only. Signatures from Apple's DriverKit reference
// (developer.apple.com/documentation/driverkit/osdata).
#pragma once

#include <DriverKit/OSObject.h>

typedef OSData *OSDataPtr;

class OSData : public OSObject {
  public:
    // documentation/driverkit/osdata/withbytes
    static OSDataPtr withBytes(const void *bytes, size_t numBytes);
    // documentation/driverkit/osdata/getbytesnocopy-91vcg
    const void *getBytesNoCopy() const;
    // documentation/driverkit/osdata/getlength
    size_t getLength() const;
};
