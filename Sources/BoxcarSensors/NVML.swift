#if canImport(Glibc)
import Glibc
#endif
import CNVML

/// libnvidia-ml, loaded with dlopen and bound function by function.
///
/// Nothing links NVML: a machine without the driver runs the agent all the same. Each function is
/// looked up on its own, so a library without one (an older driver) loses that metric only.
public final class NVMLLibrary: @unchecked Sendable {
    public let path: String
    public let driverVersion: String
    private let handle: UnsafeMutableRawPointer

    // The functions Boxcar calls; nil where the library lacks the symbol.
    typealias Device = OpaquePointer
    let shutdown: (@convention(c) () -> Int32)?
    let errorString: (@convention(c) (Int32) -> UnsafePointer<CChar>?)?
    let deviceCount: (@convention(c) (UnsafeMutablePointer<UInt32>) -> Int32)?
    let handleByIndex: (@convention(c) (UInt32, UnsafeMutablePointer<Device?>) -> Int32)?
    let name: (@convention(c) (Device, UnsafeMutablePointer<CChar>, UInt32) -> Int32)?
    let uuid: (@convention(c) (Device, UnsafeMutablePointer<CChar>, UInt32) -> Int32)?
    let utilization: (@convention(c) (Device, UnsafeMutablePointer<boxcar_nvmlUtilization_t>) -> Int32)?
    let memoryInfo: (@convention(c) (Device, UnsafeMutablePointer<boxcar_nvmlMemory_t>) -> Int32)?
    let memoryInfoV2: (@convention(c) (Device, UnsafeMutablePointer<boxcar_nvmlMemory_v2_t>) -> Int32)?
    let temperature: (@convention(c) (Device, Int32, UnsafeMutablePointer<UInt32>) -> Int32)?
    let powerUsage: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32)?
    let powerLimit: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32)?
    let totalEnergy: (@convention(c) (Device, UnsafeMutablePointer<UInt64>) -> Int32)?
    let clockInfo: (@convention(c) (Device, Int32, UnsafeMutablePointer<UInt32>) -> Int32)?
    let pcieThroughput: (@convention(c) (Device, Int32, UnsafeMutablePointer<UInt32>) -> Int32)?
    let fanSpeed: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32)?
    let clocksEventReasons: (@convention(c) (Device, UnsafeMutablePointer<UInt64>) -> Int32)?
    let totalEccErrors: (@convention(c) (Device, Int32, Int32, UnsafeMutablePointer<UInt64>) -> Int32)?
    let migMode: (@convention(c) (Device, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>) -> Int32)?
    let maxMigDeviceCount: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32)?
    let migDeviceHandleByIndex: (@convention(c) (Device, UInt32, UnsafeMutablePointer<Device?>) -> Int32)?
    let computeProcesses: (@convention(c) (Device, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<boxcar_nvmlProcessInfo_t>?) -> Int32)?
    let eventSetCreate: (@convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32)?
    let registerEvents: (@convention(c) (Device, UInt64, OpaquePointer) -> Int32)?
    let eventSetWait: (@convention(c) (OpaquePointer, UnsafeMutablePointer<boxcar_nvmlEventData_t>, UInt32) -> Int32)?

    /// Symbols the library lacks, among those Boxcar would use.
    public let missingSymbols: [String]

    /// Opens the library and initializes NVML. `hiding` pretends those symbols are absent (tests).
    public static func load(path: String = "libnvidia-ml.so.1", hiding: Set<String> = []) throws -> NVMLLibrary {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw NVMLError.libraryNotFound(path: path, reason: reason)
        }
        var missing: [String] = []
        /// The first of `names` the library has (newer drivers renamed some functions, with
        /// the same signature).
        func symbol<F>(_ names: String..., as type: F.Type) -> F? {
            for name in names where !hiding.contains(name) {
                if let address = dlsym(handle, name) { return unsafeBitCast(address, to: type) }
            }
            missing.append(names[0])
            return nil
        }
        guard let initialize = symbol("nvmlInit_v2", as: (@convention(c) () -> Int32).self) else {
            dlclose(handle)
            throw NVMLError.symbolMissing(path: path, name: "nvmlInit_v2")
        }
        let errorString = symbol("nvmlErrorString", as: (@convention(c) (Int32) -> UnsafePointer<CChar>?).self)
        let rc = initialize()
        guard rc == NVMLReturn.success else {
            let message = errorString?(rc).map { String(cString: $0) } ?? "error \(rc)"
            dlclose(handle)
            throw NVMLError.initFailed(code: rc, message: message)
        }
        var version = [CChar](repeating: 0, count: 96)
        var driver = "unknown"
        if let getVersion = symbol("nvmlSystemGetDriverVersion", as: (@convention(c) (UnsafeMutablePointer<CChar>, UInt32) -> Int32).self),
            getVersion(&version, UInt32(version.count)) == NVMLReturn.success
        {
            driver = String(cString: version)
        }
        return NVMLLibrary(
            path: path, driverVersion: driver, handle: handle,
            shutdown: symbol("nvmlShutdown", as: (@convention(c) () -> Int32).self),
            errorString: errorString,
            deviceCount: symbol("nvmlDeviceGetCount_v2", as: (@convention(c) (UnsafeMutablePointer<UInt32>) -> Int32).self),
            handleByIndex: symbol("nvmlDeviceGetHandleByIndex_v2", as: (@convention(c) (UInt32, UnsafeMutablePointer<Device?>) -> Int32).self),
            name: symbol("nvmlDeviceGetName", as: (@convention(c) (Device, UnsafeMutablePointer<CChar>, UInt32) -> Int32).self),
            uuid: symbol("nvmlDeviceGetUUID", as: (@convention(c) (Device, UnsafeMutablePointer<CChar>, UInt32) -> Int32).self),
            utilization: symbol("nvmlDeviceGetUtilizationRates", as: (@convention(c) (Device, UnsafeMutablePointer<boxcar_nvmlUtilization_t>) -> Int32).self),
            memoryInfo: symbol("nvmlDeviceGetMemoryInfo", as: (@convention(c) (Device, UnsafeMutablePointer<boxcar_nvmlMemory_t>) -> Int32).self),
            memoryInfoV2: symbol("nvmlDeviceGetMemoryInfo_v2", as: (@convention(c) (Device, UnsafeMutablePointer<boxcar_nvmlMemory_v2_t>) -> Int32).self),
            temperature: symbol("nvmlDeviceGetTemperature", as: (@convention(c) (Device, Int32, UnsafeMutablePointer<UInt32>) -> Int32).self),
            powerUsage: symbol("nvmlDeviceGetPowerUsage", as: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32).self),
            powerLimit: symbol("nvmlDeviceGetEnforcedPowerLimit", as: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32).self),
            totalEnergy: symbol("nvmlDeviceGetTotalEnergyConsumption", as: (@convention(c) (Device, UnsafeMutablePointer<UInt64>) -> Int32).self),
            clockInfo: symbol("nvmlDeviceGetClockInfo", as: (@convention(c) (Device, Int32, UnsafeMutablePointer<UInt32>) -> Int32).self),
            pcieThroughput: symbol("nvmlDeviceGetPcieThroughput", as: (@convention(c) (Device, Int32, UnsafeMutablePointer<UInt32>) -> Int32).self),
            fanSpeed: symbol("nvmlDeviceGetFanSpeed", as: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32).self),
            clocksEventReasons: symbol("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons", as: (@convention(c) (Device, UnsafeMutablePointer<UInt64>) -> Int32).self),
            totalEccErrors: symbol("nvmlDeviceGetTotalEccErrors", as: (@convention(c) (Device, Int32, Int32, UnsafeMutablePointer<UInt64>) -> Int32).self),
            migMode: symbol("nvmlDeviceGetMigMode", as: (@convention(c) (Device, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>) -> Int32).self),
            maxMigDeviceCount: symbol("nvmlDeviceGetMaxMigDeviceCount", as: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32).self),
            migDeviceHandleByIndex: symbol("nvmlDeviceGetMigDeviceHandleByIndex", as: (@convention(c) (Device, UInt32, UnsafeMutablePointer<Device?>) -> Int32).self),
            computeProcesses: symbol("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2", as: (@convention(c) (Device, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<boxcar_nvmlProcessInfo_t>?) -> Int32).self),
            eventSetCreate: symbol("nvmlEventSetCreate", as: (@convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32).self),
            registerEvents: symbol("nvmlDeviceRegisterEvents", as: (@convention(c) (Device, UInt64, OpaquePointer) -> Int32).self),
            eventSetWait: symbol("nvmlEventSetWait_v2", as: (@convention(c) (OpaquePointer, UnsafeMutablePointer<boxcar_nvmlEventData_t>, UInt32) -> Int32).self),
            missingSymbols: missing)
    }

    private init(
        path: String, driverVersion: String, handle: UnsafeMutableRawPointer,
        shutdown: (@convention(c) () -> Int32)?,
        errorString: (@convention(c) (Int32) -> UnsafePointer<CChar>?)?,
        deviceCount: (@convention(c) (UnsafeMutablePointer<UInt32>) -> Int32)?,
        handleByIndex: (@convention(c) (UInt32, UnsafeMutablePointer<Device?>) -> Int32)?,
        name: (@convention(c) (Device, UnsafeMutablePointer<CChar>, UInt32) -> Int32)?,
        uuid: (@convention(c) (Device, UnsafeMutablePointer<CChar>, UInt32) -> Int32)?,
        utilization: (@convention(c) (Device, UnsafeMutablePointer<boxcar_nvmlUtilization_t>) -> Int32)?,
        memoryInfo: (@convention(c) (Device, UnsafeMutablePointer<boxcar_nvmlMemory_t>) -> Int32)?,
        memoryInfoV2: (@convention(c) (Device, UnsafeMutablePointer<boxcar_nvmlMemory_v2_t>) -> Int32)?,
        temperature: (@convention(c) (Device, Int32, UnsafeMutablePointer<UInt32>) -> Int32)?,
        powerUsage: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32)?,
        powerLimit: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32)?,
        totalEnergy: (@convention(c) (Device, UnsafeMutablePointer<UInt64>) -> Int32)?,
        clockInfo: (@convention(c) (Device, Int32, UnsafeMutablePointer<UInt32>) -> Int32)?,
        pcieThroughput: (@convention(c) (Device, Int32, UnsafeMutablePointer<UInt32>) -> Int32)?,
        fanSpeed: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32)?,
        clocksEventReasons: (@convention(c) (Device, UnsafeMutablePointer<UInt64>) -> Int32)?,
        totalEccErrors: (@convention(c) (Device, Int32, Int32, UnsafeMutablePointer<UInt64>) -> Int32)?,
        migMode: (@convention(c) (Device, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>) -> Int32)?,
        maxMigDeviceCount: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32)?,
        migDeviceHandleByIndex: (@convention(c) (Device, UInt32, UnsafeMutablePointer<Device?>) -> Int32)?,
        computeProcesses: (@convention(c) (Device, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<boxcar_nvmlProcessInfo_t>?) -> Int32)?,
        eventSetCreate: (@convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32)?,
        registerEvents: (@convention(c) (Device, UInt64, OpaquePointer) -> Int32)?,
        eventSetWait: (@convention(c) (OpaquePointer, UnsafeMutablePointer<boxcar_nvmlEventData_t>, UInt32) -> Int32)?,
        missingSymbols: [String]
    ) {
        self.path = path
        self.driverVersion = driverVersion
        self.handle = handle
        self.shutdown = shutdown
        self.errorString = errorString
        self.deviceCount = deviceCount
        self.handleByIndex = handleByIndex
        self.name = name
        self.uuid = uuid
        self.utilization = utilization
        self.memoryInfo = memoryInfo
        self.memoryInfoV2 = memoryInfoV2
        self.temperature = temperature
        self.powerUsage = powerUsage
        self.powerLimit = powerLimit
        self.totalEnergy = totalEnergy
        self.clockInfo = clockInfo
        self.pcieThroughput = pcieThroughput
        self.fanSpeed = fanSpeed
        self.clocksEventReasons = clocksEventReasons
        self.totalEccErrors = totalEccErrors
        self.migMode = migMode
        self.maxMigDeviceCount = maxMigDeviceCount
        self.migDeviceHandleByIndex = migDeviceHandleByIndex
        self.computeProcesses = computeProcesses
        self.eventSetCreate = eventSetCreate
        self.registerEvents = registerEvents
        self.eventSetWait = eventSetWait
        self.missingSymbols = missingSymbols
    }

    deinit {
        _ = shutdown?()
        dlclose(handle)
    }

    func describe(_ code: Int32) -> String {
        errorString?(code).map { String(cString: $0) } ?? "NVML error \(code)"
    }
}

public enum NVMLError: Error, CustomStringConvertible, Equatable {
    case libraryNotFound(path: String, reason: String)
    case symbolMissing(path: String, name: String)
    case initFailed(code: Int32, message: String)

    public var description: String {
        switch self {
        case .libraryNotFound(let path, let reason):
            return "no NVML library (\(path)): \(reason); NVIDIA GPUs are not sampled"
        case .symbolMissing(let path, let name):
            return "\(path) has no \(name); it is not an NVML library"
        case .initFailed(let code, let message):
            let hint = code == NVMLReturn.driverNotLoaded ? " (is the NVIDIA driver loaded?)"
                : code == NVMLReturn.libraryVersionMismatch ? " (the driver and libnvidia-ml differ in version)" : ""
            return "nvmlInit failed: \(message)\(hint)"
        }
    }
}

enum NVMLReturn {
    static let success: Int32 = 0
    static let notSupported: Int32 = 3
    static let notFound: Int32 = 6
    static let insufficientSize: Int32 = 7
    static let driverNotLoaded: Int32 = 9
    static let libraryVersionMismatch: Int32 = 18
}
