#if canImport(Glibc)
import Glibc
#endif

/// What names a disk to a person: its model and serial number and, for device-mapper and md
/// devices, the name they were given (`dm-0` is `vg0-root`).
public struct DiskIdentity: Equatable, Sendable {
    public var model: String?
    public var serial: String?
    public var name: String?

    public init(model: String? = nil, serial: String? = nil, name: String? = nil) {
        self.model = model
        self.serial = serial
        self.name = name
    }

    /// Each field from `self`, else from `other`.
    func filled(from other: DiskIdentity) -> DiskIdentity {
        DiskIdentity(model: model ?? other.model, serial: serial ?? other.serial, name: name ?? other.name)
    }
}

/// libudev, loaded with dlopen: the properties udev's rules gave each disk (ID_MODEL,
/// ID_SERIAL_SHORT, DM_NAME, …), which /sys alone does not hold for every kind of disk. Nothing
/// links libudev: a machine or container without it falls back to /sys.
public final class Udev: @unchecked Sendable {
    public let path: String
    private let handle: UnsafeMutableRawPointer
    private let context: OpaquePointer
    private let unref: @convention(c) (OpaquePointer) -> OpaquePointer?
    private let deviceFromName: @convention(c) (OpaquePointer, UnsafePointer<CChar>, UnsafePointer<CChar>) -> OpaquePointer?
    private let property: @convention(c) (OpaquePointer, UnsafePointer<CChar>) -> UnsafePointer<CChar>?
    private let deviceUnref: @convention(c) (OpaquePointer) -> OpaquePointer?

    /// Opens the library; throws naming what is missing.
    public init(path: String = "libudev.so.1") throws {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw SensorError("no \(path): " + (dlerror().map { String(cString: $0) } ?? "unknown reason"))
        }
        func symbol<F>(_ name: String, as type: F.Type) throws -> F {
            guard let address = dlsym(handle, name) else {
                dlclose(handle)
                throw SensorError("\(path) lacks \(name)")
            }
            return unsafeBitCast(address, to: type)
        }
        let create = try symbol("udev_new", as: (@convention(c) () -> OpaquePointer?).self)
        unref = try symbol("udev_unref", as: (@convention(c) (OpaquePointer) -> OpaquePointer?).self)
        deviceFromName = try symbol(
            "udev_device_new_from_subsystem_sysname",
            as: (@convention(c) (OpaquePointer, UnsafePointer<CChar>, UnsafePointer<CChar>) -> OpaquePointer?).self)
        property = try symbol(
            "udev_device_get_property_value",
            as: (@convention(c) (OpaquePointer, UnsafePointer<CChar>) -> UnsafePointer<CChar>?).self)
        deviceUnref = try symbol("udev_device_unref", as: (@convention(c) (OpaquePointer) -> OpaquePointer?).self)
        guard let context = create() else {
            dlclose(handle)
            throw SensorError("udev_new failed")
        }
        self.path = path
        self.handle = handle
        self.context = context
    }

    /// libudev for the machine's own /sys, nil elsewhere (it always reads the real /sys, so a
    /// fixture tree is described by /sys alone) or where it cannot be loaded.
    public static func forSysRoot(_ sysRoot: String) -> Udev? {
        sysRoot == "/sys" ? try? Udev() : nil
    }

    deinit {
        _ = unref(context)
        // The library stays loaded: libudev keeps state of its own (thread-local caches,
        // destructors) that unloading it would leave dangling.
    }

    /// The udev properties of one block device (`sda`, `nvme0n1`, `dm-0`); empty when udev does
    /// not know it.
    public func properties(ofBlockDevice device: String, _ names: [String]) -> [String: String] {
        guard let handle = deviceFromName(context, "block", device) else { return [:] }
        defer { _ = deviceUnref(handle) }
        var out: [String: String] = [:]
        for name in names {
            if let value = property(handle, name).map({ String(cString: $0) }), !value.isEmpty { out[name] = value }
        }
        return out
    }

    public func identity(of device: String) -> DiskIdentity {
        let found = properties(ofBlockDevice: device, ["ID_MODEL", "ID_SERIAL_SHORT", "ID_SERIAL", "DM_NAME", "MD_DEVNAME"])
        return DiskIdentity(
            model: found["ID_MODEL"].map { $0.replacingUnderscores() },
            serial: found["ID_SERIAL_SHORT"] ?? found["ID_SERIAL"],
            name: found["DM_NAME"] ?? found["MD_DEVNAME"])
    }
}

/// Disk identities from /sys: the model and serial the driver exposes (SCSI/SATA, NVMe,
/// virtio) and a device-mapper device's name. What udev knows comes first where it is loaded.
public final class SysfsDiskIdentities {
    let sysRoot: String

    public init(sysRoot: String = "/sys") {
        self.sysRoot = sysRoot
    }

    public func identity(of device: String) -> DiskIdentity {
        let block = sysRoot + "/block/" + device
        func text(_ relative: String) -> String? {
            guard let bytes = try? readFile(block + "/" + relative) else { return nil }
            let value = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: "\n").trimmingCharacters(in: " ")
            return value.isEmpty ? nil : value
        }
        return DiskIdentity(
            model: text("device/model"),
            serial: text("device/serial") ?? text("serial"),
            name: text("dm/name") ?? text("md/name"))
    }
}

extension String {
    /// udev writes spaces in ID_MODEL as underscores.
    fileprivate func replacingUnderscores() -> String {
        String(map { $0 == "_" ? " " : $0 })
    }
}
