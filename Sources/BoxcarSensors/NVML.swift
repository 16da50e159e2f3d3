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
    typealias ErrorString = @convention(c) (Int32) -> UnsafePointer<CChar>?
    let shutdown: (@convention(c) () -> Int32)?
    let errorString: ErrorString?
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
    let encoderUtilization: (@convention(c) (Device, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>) -> Int32)?
    let decoderUtilization: (@convention(c) (Device, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>) -> Int32)?
    let pcieReplayCounter: (@convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Int32)?
    let remappedRows: (@convention(c) (
        Device, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>
    ) -> Int32)?
    let retiredPages: (@convention(c) (Device, Int32, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt64>?) -> Int32)?
    let violationStatus: (@convention(c) (Device, Int32, UnsafeMutablePointer<boxcar_nvmlViolationTime_t>) -> Int32)?
    let nvLinkState: (@convention(c) (Device, UInt32, UnsafeMutablePointer<Int32>) -> Int32)?
    let nvLinkErrorCounter: (@convention(c) (Device, UInt32, Int32, UnsafeMutablePointer<UInt64>) -> Int32)?
    let fieldValues: (@convention(c) (Device, Int32, UnsafeMutablePointer<boxcar_nvmlFieldValue_t>) -> Int32)?
    let gpmQueryDeviceSupport: (@convention(c) (Device, UnsafeMutablePointer<boxcar_nvmlGpmSupport_t>) -> Int32)?
    let gpmSampleAlloc: (@convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32)?
    let gpmSampleFree: (@convention(c) (OpaquePointer) -> Int32)?
    let gpmSampleGet: (@convention(c) (Device, OpaquePointer) -> Int32)?
    let gpmMetricsGet: (@convention(c) (UnsafeMutablePointer<boxcar_nvmlGpmMetricsGet_t>) -> Int32)?
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
        let symbols = SymbolTable(handle: handle, hiding: hiding)
        guard let initialize: @convention(c) () -> Int32 = symbols.find("nvmlInit_v2") else {
            dlclose(handle)
            throw NVMLError.symbolMissing(path: path, name: "nvmlInit_v2")
        }
        let rc = initialize()
        guard rc == NVMLReturn.success else {
            let errorString: ErrorString? = symbols.find("nvmlErrorString")
            let message = errorString?(rc).map { String(cString: $0) } ?? "error \(rc)"
            dlclose(handle)
            throw NVMLError.initFailed(code: rc, message: message)
        }
        var version = [CChar](repeating: 0, count: 96)
        var driver = "unknown"
        let getVersion: (@convention(c) (UnsafeMutablePointer<CChar>, UInt32) -> Int32)? = symbols.find("nvmlSystemGetDriverVersion")
        if let getVersion, getVersion(&version, UInt32(version.count)) == NVMLReturn.success {
            driver = String(cString: version)
        }
        return NVMLLibrary(path: path, driverVersion: driver, handle: handle, symbols: symbols)
    }

    /// Binds every function; each takes its type from the property it is stored in.
    private init(path: String, driverVersion: String, handle: UnsafeMutableRawPointer, symbols: SymbolTable) {
        self.path = path
        self.driverVersion = driverVersion
        self.handle = handle
        shutdown = symbols.find("nvmlShutdown")
        errorString = symbols.find("nvmlErrorString")
        deviceCount = symbols.find("nvmlDeviceGetCount_v2")
        handleByIndex = symbols.find("nvmlDeviceGetHandleByIndex_v2")
        name = symbols.find("nvmlDeviceGetName")
        uuid = symbols.find("nvmlDeviceGetUUID")
        utilization = symbols.find("nvmlDeviceGetUtilizationRates")
        memoryInfo = symbols.find("nvmlDeviceGetMemoryInfo")
        memoryInfoV2 = symbols.find("nvmlDeviceGetMemoryInfo_v2")
        temperature = symbols.find("nvmlDeviceGetTemperature")
        powerUsage = symbols.find("nvmlDeviceGetPowerUsage")
        powerLimit = symbols.find("nvmlDeviceGetEnforcedPowerLimit")
        totalEnergy = symbols.find("nvmlDeviceGetTotalEnergyConsumption")
        clockInfo = symbols.find("nvmlDeviceGetClockInfo")
        pcieThroughput = symbols.find("nvmlDeviceGetPcieThroughput")
        fanSpeed = symbols.find("nvmlDeviceGetFanSpeed")
        clocksEventReasons = symbols.find("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
        totalEccErrors = symbols.find("nvmlDeviceGetTotalEccErrors")
        migMode = symbols.find("nvmlDeviceGetMigMode")
        maxMigDeviceCount = symbols.find("nvmlDeviceGetMaxMigDeviceCount")
        migDeviceHandleByIndex = symbols.find("nvmlDeviceGetMigDeviceHandleByIndex")
        computeProcesses = symbols.find("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2")
        encoderUtilization = symbols.find("nvmlDeviceGetEncoderUtilization")
        decoderUtilization = symbols.find("nvmlDeviceGetDecoderUtilization")
        pcieReplayCounter = symbols.find("nvmlDeviceGetPcieReplayCounter")
        remappedRows = symbols.find("nvmlDeviceGetRemappedRows")
        retiredPages = symbols.find("nvmlDeviceGetRetiredPages")
        violationStatus = symbols.find("nvmlDeviceGetViolationStatus")
        nvLinkState = symbols.find("nvmlDeviceGetNvLinkState")
        nvLinkErrorCounter = symbols.find("nvmlDeviceGetNvLinkErrorCounter")
        fieldValues = symbols.find("nvmlDeviceGetFieldValues")
        gpmQueryDeviceSupport = symbols.find("nvmlGpmQueryDeviceSupport")
        gpmSampleAlloc = symbols.find("nvmlGpmSampleAlloc")
        gpmSampleFree = symbols.find("nvmlGpmSampleFree")
        gpmSampleGet = symbols.find("nvmlGpmSampleGet")
        gpmMetricsGet = symbols.find("nvmlGpmMetricsGet")
        eventSetCreate = symbols.find("nvmlEventSetCreate")
        registerEvents = symbols.find("nvmlDeviceRegisterEvents")
        eventSetWait = symbols.find("nvmlEventSetWait_v2")
        missingSymbols = symbols.missing
    }

    deinit {
        _ = shutdown?()
        dlclose(handle)
    }

    func describe(_ code: Int32) -> String {
        errorString?(code).map { String(cString: $0) } ?? "NVML error \(code)"
    }
}

/// Looks functions up in an opened library, noting those it lacks.
private final class SymbolTable {
    let handle: UnsafeMutableRawPointer
    let hiding: Set<String>
    var missing: [String] = []

    init(handle: UnsafeMutableRawPointer, hiding: Set<String>) {
        self.handle = handle
        self.hiding = hiding
    }

    /// The first of `names` the library has, as a function of type `F` (newer drivers renamed
    /// some functions, with the same signature).
    func find<F>(_ names: String...) -> F? {
        for name in names where !hiding.contains(name) {
            if let address = dlsym(handle, name) { return unsafeBitCast(address, to: F.self) }
        }
        missing.append(names[0])
        return nil
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
    static let functionNotFound: Int32 = 13
    /// NVML_ERROR_DEPRECATED: a call the driver keeps only to say it is gone.
    static let deprecated: Int32 = 26
    static let libraryVersionMismatch: Int32 = 18
}
