//! The C calls the macOS backend makes (IOKit, CoreFoundation, IOSurface,
//! the Mach task port), and the small owning wrappers that make them safe.
//!
//! This is the only file of the backend that uses `unsafe`. It is sound
//! because every wrapper keeps the invariants the C API needs in its own
//! type: a CoreFoundation object is owned by exactly one [`CfObject`] and
//! released exactly once in its `Drop`; an `io_object_t` by one [`Service`];
//! a connection by one [`Connection`], closed in its `Drop`; an IOSurface by
//! one [`SurfaceRef`], which hands out its bytes as a slice only while it
//! holds the surface's lock, and whose `unlock` needs `&mut self`, so no
//! slice outlives the lock. Pointers passed to C point at live Rust values
//! of the size passed with them.
//!
//! Signatures follow Apple's headers (IOKitLib.h, CFDictionary.h,
//! CFNumber.h, CFString.h, IOSurfaceRef.h): handles are `u32`, `kern_return_t`
//! and `IOReturn` are `i32`, `size_t` is `usize`, `CFIndex` is `isize`.
//!
//! On macOS the frameworks are linked. With `--cfg unimem_apple_check` on
//! another OS the declarations compile but nothing links them: that build is
//! for `cargo check` and clippy only.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CStr};
use std::ptr::{self, NonNull};

use unimem_core::iokit::IoReturn;

pub type KernReturn = i32;
pub type MachPort = u32;
pub type IoObject = MachPort;
pub type CfIndex = isize;
pub type CfTypeRef = *const c_void;
pub type CfStringRef = *const c_void;
pub type CfDictionaryRef = *const c_void;
pub type CfMutableDictionaryRef = *mut c_void;
pub type CfNumberRef = *const c_void;
pub type CfAllocatorRef = *const c_void;
pub type IoSurfaceRef = *mut c_void;

/// `kIOMainPortDefault` (= the deprecated `kIOMasterPortDefault`): `MACH_PORT_NULL`.
const IO_MAIN_PORT_DEFAULT: MachPort = 0;
/// `kCFNumberSInt64Type`: wide enough for sizes of 2 GiB and more.
const CF_NUMBER_SINT64_TYPE: CfIndex = 4;

/// Opaque `CFDictionaryKeyCallBacks` / `CFDictionaryValueCallBacks`: only
/// their addresses are passed.
#[repr(C)]
pub struct CfDictionaryCallBacks {
    _opaque: [u8; 0],
}

#[cfg_attr(target_os = "macos", link(name = "IOKit", kind = "framework"))]
extern "C" {
    fn IOServiceNameMatching(name: *const c_char) -> CfMutableDictionaryRef;
    fn IOServiceGetMatchingService(main_port: MachPort, matching: CfDictionaryRef) -> IoObject;
    fn IOServiceOpen(
        service: IoObject,
        owning_task: MachPort,
        kind: u32,
        connect: *mut IoObject,
    ) -> KernReturn;
    fn IOServiceClose(connect: IoObject) -> KernReturn;
    fn IOObjectRelease(object: IoObject) -> KernReturn;
    fn IOConnectCallStructMethod(
        connection: MachPort,
        selector: u32,
        input: *const c_void,
        input_count: usize,
        output: *mut c_void,
        output_count: *mut usize,
    ) -> KernReturn;
}

#[cfg_attr(target_os = "macos", link(name = "CoreFoundation", kind = "framework"))]
extern "C" {
    static kCFTypeDictionaryKeyCallBacks: CfDictionaryCallBacks;
    static kCFTypeDictionaryValueCallBacks: CfDictionaryCallBacks;
    fn CFDictionaryCreateMutable(
        allocator: CfAllocatorRef,
        capacity: CfIndex,
        key_callbacks: *const CfDictionaryCallBacks,
        value_callbacks: *const CfDictionaryCallBacks,
    ) -> CfMutableDictionaryRef;
    fn CFDictionarySetValue(dict: CfMutableDictionaryRef, key: *const c_void, value: *const c_void);
    fn CFNumberCreate(
        allocator: CfAllocatorRef,
        number_type: CfIndex,
        value: *const c_void,
    ) -> CfNumberRef;
    fn CFRelease(object: CfTypeRef);
}

#[cfg_attr(target_os = "macos", link(name = "IOSurface", kind = "framework"))]
extern "C" {
    static kIOSurfaceWidth: CfStringRef;
    static kIOSurfaceHeight: CfStringRef;
    static kIOSurfaceBytesPerElement: CfStringRef;
    static kIOSurfaceBytesPerRow: CfStringRef;
    static kIOSurfaceAllocSize: CfStringRef;
    fn IOSurfaceCreate(properties: CfDictionaryRef) -> IoSurfaceRef;
    fn IOSurfaceGetID(surface: IoSurfaceRef) -> u32;
    fn IOSurfaceLock(surface: IoSurfaceRef, options: u32, seed: *mut u32) -> KernReturn;
    fn IOSurfaceUnlock(surface: IoSurfaceRef, options: u32, seed: *mut u32) -> KernReturn;
    fn IOSurfaceGetBaseAddress(surface: IoSurfaceRef) -> *mut c_void;
    fn IOSurfaceGetAllocSize(surface: IoSurfaceRef) -> usize;
    fn IOSurfaceGetPropertyMaximum(property: CfStringRef) -> usize;
}

extern "C" {
    /// The task's own port; `mach_task_self()` is a macro that reads it.
    static mach_task_self_: MachPort;
}

/// `sysconf(_SC_PAGESIZE)`: the VM page size (16 KiB on Apple Silicon,
/// 4 KiB on Intel Macs), never assumed.
pub fn page_size() -> Option<u64> {
    // SAFETY: sysconf takes a plain integer and touches no memory of ours.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0)
}

// ---- CoreFoundation -----------------------------------------------------

/// An owned (+1) CoreFoundation object, released on drop.
pub struct CfObject(NonNull<c_void>);

impl CfObject {
    /// Takes ownership of a +1 reference from a Create call; `None` if null.
    fn from_create(object: *const c_void) -> Option<Self> {
        NonNull::new(object.cast_mut()).map(CfObject)
    }

    pub fn as_ptr(&self) -> *const c_void {
        self.0.as_ptr()
    }
}

impl Drop for CfObject {
    fn drop(&mut self) {
        // SAFETY: we own one reference to a live CF object (from a Create
        // call) and give it up exactly once, here.
        unsafe { CFRelease(self.0.as_ptr()) }
    }
}

/// `CFNumberCreate(NULL, kCFNumberSInt64Type, &value)`.
pub fn cf_number_i64(value: i64) -> Option<CfObject> {
    // SAFETY: the value pointer points at a live i64, which is what
    // kCFNumberSInt64Type tells CFNumberCreate to read; it copies it.
    let n = unsafe {
        CFNumberCreate(
            ptr::null(),
            CF_NUMBER_SINT64_TYPE,
            (&value as *const i64).cast(),
        )
    };
    CfObject::from_create(n)
}

/// `CFDictionaryCreateMutable` with the CFType callbacks, so the dictionary
/// retains what is put in it and releases it when it goes.
pub fn cf_mutable_dictionary() -> Option<CfObject> {
    // SAFETY: the callbacks are CoreFoundation's own constant tables; a
    // capacity of 0 means unbounded.
    let d = unsafe {
        CFDictionaryCreateMutable(
            ptr::null(),
            0,
            ptr::addr_of!(kCFTypeDictionaryKeyCallBacks),
            ptr::addr_of!(kCFTypeDictionaryValueCallBacks),
        )
    };
    CfObject::from_create(d)
}

/// `CFDictionarySetValue(dict, key, value)`; the dictionary retains both.
pub fn cf_dictionary_set(dict: &CfObject, key: SurfaceKey, value: &CfObject) {
    // SAFETY: dict is a live mutable dictionary we created with the CFType
    // callbacks (see cf_mutable_dictionary); key is a constant CFString
    // and value a live CF object; the dictionary retains both.
    unsafe { CFDictionarySetValue(dict.as_ptr().cast_mut(), key.cf_string(), value.as_ptr()) }
}

// ---- IOSurface ----------------------------------------------------------

/// The IOSurface property keys the backend sets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SurfaceKey {
    Width,
    Height,
    BytesPerElement,
    BytesPerRow,
    AllocSize,
}

impl SurfaceKey {
    fn cf_string(self) -> CfStringRef {
        // SAFETY: reading an immutable CFStringRef constant the IOSurface
        // framework exports and never changes.
        unsafe {
            match self {
                SurfaceKey::Width => kIOSurfaceWidth,
                SurfaceKey::Height => kIOSurfaceHeight,
                SurfaceKey::BytesPerElement => kIOSurfaceBytesPerElement,
                SurfaceKey::BytesPerRow => kIOSurfaceBytesPerRow,
                SurfaceKey::AllocSize => kIOSurfaceAllocSize,
            }
        }
    }

    /// `IOSurfaceGetPropertyMaximum(key)`.
    pub fn maximum(self) -> usize {
        // SAFETY: the argument is one of IOSurface's own key constants.
        unsafe { IOSurfaceGetPropertyMaximum(self.cf_string()) }
    }
}

/// An owned IOSurface, with its lock state.
pub struct SurfaceRef {
    surface: NonNull<c_void>,
    locked: bool,
}

// SAFETY: an IOSurfaceRef is a CoreFoundation object, usable from any
// thread; SurfaceRef has no thread-bound state, and its lock is taken and
// released through &mut self.
unsafe impl Send for SurfaceRef {}

impl SurfaceRef {
    /// `IOSurfaceCreate(properties)`; the dictionary is not consumed.
    pub fn create(properties: &CfObject) -> Option<Self> {
        // SAFETY: properties is a live CFDictionary; IOSurfaceCreate
        // returns a +1 surface or NULL and does not keep the dictionary.
        let s = unsafe { IOSurfaceCreate(properties.as_ptr()) };
        NonNull::new(s).map(|surface| SurfaceRef {
            surface,
            locked: false,
        })
    }

    /// `IOSurfaceGetID`.
    pub fn id(&self) -> u32 {
        // SAFETY: self.surface is a live surface we own.
        unsafe { IOSurfaceGetID(self.surface.as_ptr()) }
    }

    /// `IOSurfaceGetAllocSize`.
    pub fn alloc_size(&self) -> usize {
        // SAFETY: self.surface is a live surface we own.
        unsafe { IOSurfaceGetAllocSize(self.surface.as_ptr()) }
    }

    /// `IOSurfaceLock(surface, 0, NULL)`: read-write.
    pub fn lock(&mut self) -> IoReturn {
        if self.locked {
            return IoReturn::SUCCESS;
        }
        // SAFETY: live surface; options 0 = read-write; seed may be NULL.
        let r = IoReturn(unsafe { IOSurfaceLock(self.surface.as_ptr(), 0, ptr::null_mut()) });
        self.locked = r.is_success();
        r
    }

    /// `IOSurfaceUnlock(surface, 0, NULL)`, with the options of the lock.
    pub fn unlock(&mut self) -> IoReturn {
        if !self.locked {
            return IoReturn::SUCCESS;
        }
        self.locked = false;
        // SAFETY: live surface, locked by us read-write; &mut self means no
        // slice from bytes()/bytes_mut() is still borrowed.
        IoReturn(unsafe { IOSurfaceUnlock(self.surface.as_ptr(), 0, ptr::null_mut()) })
    }

    /// The base address as an integer (what the DEXT is sent).
    pub fn base_address(&self) -> u64 {
        // SAFETY: live surface; the call only reads its base address.
        unsafe { IOSurfaceGetBaseAddress(self.surface.as_ptr()) as u64 }
    }

    fn raw_bytes(&self) -> Option<(*mut u8, usize)> {
        if !self.locked {
            return None;
        }
        // SAFETY: live, locked surface.
        let base = unsafe { IOSurfaceGetBaseAddress(self.surface.as_ptr()) }.cast::<u8>();
        (!base.is_null()).then(|| (base, self.alloc_size()))
    }

    /// The surface's bytes, while it is locked.
    pub fn bytes(&self) -> Option<&[u8]> {
        let (base, len) = self.raw_bytes()?;
        // SAFETY: while the surface is locked its base address stays mapped
        // in this process for alloc_size bytes; the slice borrows self, so
        // it cannot outlive the lock (unlock needs &mut self).
        Some(unsafe { std::slice::from_raw_parts(base, len) })
    }

    /// The surface's bytes, writable, while it is locked.
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        let (base, len) = self.raw_bytes()?;
        // SAFETY: as in bytes(); the exclusive borrow of self makes this the
        // only slice of the surface in this process.
        Some(unsafe { std::slice::from_raw_parts_mut(base, len) })
    }
}

impl Drop for SurfaceRef {
    fn drop(&mut self) {
        let _ = self.unlock();
        // SAFETY: we own the +1 reference from IOSurfaceCreate and release
        // it once; no slice borrows self any more.
        unsafe { CFRelease(self.surface.as_ptr()) }
    }
}

// ---- IOKit services and connections -------------------------------------

/// An `io_service_t` we own, released on drop.
pub struct Service(IoObject);

impl Service {
    /// `IOServiceGetMatchingService(kIOMainPortDefault,
    /// IOServiceNameMatching(name))`: the first service with this name.
    /// A DEXT's service carries its IOUserClass as its name (its class is
    /// IOUserService), so this is how a client finds it.
    pub fn matching_name(name: &CStr) -> Option<Service> {
        // SAFETY: name is a NUL-terminated string that outlives the call;
        // the returned dictionary is +1 and IOServiceGetMatchingService
        // consumes it (so it is not released here), even on failure.
        let service = unsafe {
            let matching = IOServiceNameMatching(name.as_ptr());
            if matching.is_null() {
                return None;
            }
            IOServiceGetMatchingService(IO_MAIN_PORT_DEFAULT, matching)
        };
        (service != 0).then_some(Service(service))
    }

    /// `IOServiceOpen(service, mach_task_self(), kind, &connect)`.
    pub fn open(&self, kind: u32) -> Result<Connection, IoReturn> {
        let mut connect: IoObject = 0;
        // SAFETY: self.0 is a live service; mach_task_self_ is the task port
        // the runtime initialises before main; connect is a live u32.
        let r = unsafe { IOServiceOpen(self.0, mach_task_self_, kind, &mut connect) };
        if r != 0 {
            return Err(IoReturn(r));
        }
        Ok(Connection(connect))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: we own this io_object_t reference and release it once.
        unsafe {
            IOObjectRelease(self.0);
        }
    }
}

/// An open `io_connect_t`, closed on drop (which makes the DEXT release
/// everything the connection holds).
pub struct Connection(IoObject);

impl Connection {
    /// `IOConnectCallStructMethod(connection, selector, input, output)`.
    /// Returns the number of bytes the DEXT wrote into `output`.
    pub fn call_struct(
        &self,
        selector: u32,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize, IoReturn> {
        let mut out_len = output.len();
        // SAFETY: input and output are live slices of the lengths passed;
        // IOKit writes at most out_len bytes into output and stores the
        // count it wrote in out_len.
        let r = unsafe {
            IOConnectCallStructMethod(
                self.0,
                selector,
                input.as_ptr().cast(),
                input.len(),
                output.as_mut_ptr().cast(),
                &mut out_len,
            )
        };
        if r != 0 {
            return Err(IoReturn(r));
        }
        Ok(out_len.min(output.len()))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: we own this connection and close it once; IOServiceClose
        // also drops the port's reference (no IOObjectRelease after it).
        unsafe {
            IOServiceClose(self.0);
        }
    }
}
