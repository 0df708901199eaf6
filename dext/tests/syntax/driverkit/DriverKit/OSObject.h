// Stand-in for DriverKit's OSObject.h and OSMetaClass.h (the iig output of
// OSObject.iig plus the SDK header it includes), for the syntax check only.
// Declarations only; nothing here links or runs.
//
// Unlike the real OSObject.h this does not include <string.h>: the check
// then also proves that our files include what they use.
#pragma once

#include <DriverKit/IORPC.h>
#include <DriverKit/IOReturn.h>

class OSMetaClass;
class OSObject;
class OSData;
class OSDictionary;
class OSAction;

// xnu-11417.101.15 iokit/DriverKit/OSObject.iig
typedef OSObject *OSObjectPtr;

// DriverKit SDK DriverKit/OSMetaClass.h (not in xnu): OSMetaClassBase
class OSMetaClassBase {
  public:
    // The helper OSDynamicCast expands to.
    static OSMetaClassBase *safeMetaCast(const OSMetaClassBase *anObject,
                                         const OSMetaClass *toMeta);
    // xnu-11417.101.15 iokit/DriverKit/OSObject.iig (class OSMetaClassBase)
    virtual void retain() const;
    virtual void release() const;
    virtual kern_return_t Dispatch(const IORPC rpc);
};

// DriverKit SDK DriverKit/OSMetaClass.h
class OSMetaClass : public OSMetaClassBase {
  public:
    virtual kern_return_t New(OSObject *instance) = 0;
};

// DriverKit SDK DriverKit/OSMetaClass.h
class OSInterface {};

// xnu-11417.101.15 iokit/DriverKit/OSObject.iig: init and free are
// LOCALONLY virtuals; retain and release override OSMetaClassBase's.
class OSObject : public OSMetaClassBase {
  public:
    virtual bool init();
    virtual void free();
    virtual void retain() const override;
    virtual void release() const override;
    static kern_return_t _Dispatch(OSObject *self, const IORPC rpc);
};

// DriverKit SDK DriverKit/OSMetaClass.h: the metaclass of class T is the
// global gTMetaClass, which iig declares for every class.
#define OSTypeID(type) g##type##MetaClass
#define OSDynamicCast(type, inst) \
    ((inst) ? ((type *)OSMetaClassBase::safeMetaCast((inst), OSTypeID(type))) : NULL)

// DriverKit SDK DriverKit/OSMetaClass.h
#define SUPERDISPATCH ((OSDispatchMethod) & super::_Dispatch)
#define APPLE_KEXT_OVERRIDE override

// xnu-11417.101.15 iokit/DriverKit/OSObject.iig
#define DEFN(classname, name) name##_Impl(classname##_##name##_Args)
#define IMPL(classname, name) classname ::DEFN(classname, name)

// The iig annotations, empty outside iig (OSObject.iig, !__IIG branch).
#define LOCAL
#define LOCALONLY
#define KERNEL
