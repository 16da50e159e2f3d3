#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import BoxcarClient
import BoxcarSensors
import BoxcarSampling
import BoxcarServer
import BoxcarStore
import FoundationEssentials
import GRPCCore

/// `boxcar doctor`: which sensors work on this machine, and why the others do not.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Say which sensors work on this machine and why the others do not.",
        discussion: "Example: boxcar doctor --pid $(pgrep -f train.py)")

    @Option(help: "Where /proc is read.")
    var procRoot = "/proc"

    @Option(help: "Where /sys is read.")
    var sysRoot = "/sys"

    @Option(help: "The NVML library to load.")
    var nvmlLibrary = "libnvidia-ml.so.1"

    @Option(help: "The database whose size is shown. Default: $BOXCAR_DB, else the agent's default.")
    var db: String?

    @Option(help: "The running agent's socket, asked where forwarding stands. Default: $BOXCAR_SOCKET, else the agent's default.")
    var socket: String?

    @Option(help: "Also check what can be read of this process (a trainer's PID).")
    var pid: Int32?

    @Flag(help: "Print JSON for machines instead of a table for people.")
    var json = false

    struct Finding: Encodable {
        var sensor: String
        var works: Bool
        var series: Int
        var detail: String
    }

    func run() async throws {
        var findings: [Finding] = []
        // A sensor that hangs (statvfs on a dead NFS server) is reported, not waited for.
        let guardian = HangGuard<String>()
        for sensor in hostSensors(procRoot: procRoot, sysRoot: sysRoot) {
            // Twice, so that the counters give rates.
            let answer = guardian.run(sensor.name, within: Self.deadline) {
                Result {
                    _ = try sensor.sample(elapsed: nil)
                    usleep(50_000)
                    return try sensor.sample(elapsed: .milliseconds(50))
                }
            }
            switch answer {
            case .finished(.success(let all)):
                // What the agent would drop: a value that is not finite, a key it cannot store.
                let keyed = all.map(KeyedReading.init)
                let readings = keyed.filter { $0.isStorable() }
                let series = Set(readings.map(\.key)).count
                var detail = series > 0 ? "ok" : Self.nothingFound[sensor.name] ?? "nothing to read"
                if let bad = keyed.first(where: { !$0.isStorable() }) {
                    detail = "\(all.count - readings.count) readings cannot be stored and are dropped, such as \(bad.key.debugDescription) = \(bad.value)"
                }
                if let amd = sensor as? AMDGPUSensor, series > 0 {
                    detail = amd.cardNames().joined(separator: "; ")
                }
                if let filesystems = sensor as? FilesystemSensor, !filesystems.hungMounts.isEmpty {
                    detail = "statvfs did not answer within 1 s on \(filesystems.hungMounts.joined(separator: ", ")) (a network filesystem whose server is gone?): left out; the others are read"
                }
                findings.append(Finding(sensor: sensor.name, works: series > 0, series: series, detail: detail))
            case .finished(.failure(let error)):
                findings.append(Finding(sensor: sensor.name, works: false, series: 0, detail: "\(error)"))
            case .timedOut, .stillRunning:
                findings.append(Finding(
                    sensor: sensor.name, works: false, series: 0,
                    detail: "did not answer within \(Self.deadline) (a hung filesystem or driver?); the agent leaves it out until it does"))
            }
        }
        findings.append(nvidia())
        findings.append(udev())
        let databasePath = db ?? Defaults.environment["BOXCAR_DB"] ?? Defaults.databasePath
        findings.append(await database(databasePath))
        findings += await upstreams(
            socket: socket ?? Defaults.environment["BOXCAR_SOCKET"] ?? Defaults.socketPath, database: databasePath)
        if let pid {
            findings.append(processAccess(pid))
        }
        if json {
            print(try encodeJSON(findings))
            return
        }
        print(table(
            ["SENSOR", "WORKS", "SERIES", "DETAIL"],
            findings.map { [$0.sensor, $0.works ? "yes" : "no", String($0.series), $0.detail] }))
    }

    static let deadline = SensorSet.deadline

    static let nothingFound = [
        "infiniband": "no InfiniBand devices under /sys/class/infiniband",
        "amdgpu": "no AMD GPUs (amdgpu) under /sys/class/drm",
        "disk": "no whole disks in /proc/diskstats",
        "network": "no physical network interfaces",
    ]

    func nvidia() -> Finding {
        do {
            let library = try NVMLLibrary.load(path: nvmlLibrary)
            let sensor = try NVIDIAGPUSensor(library: library)
            let series = Set(sensor.sample().map(\.seriesKey)).count
            var detail = "driver \(library.driverVersion), \(sensor.gpus.count) GPU(s)"
            for (index, reasons) in sensor.unsupported.sorted(by: { $0.key < $1.key }) {
                detail += "; GPU \(index) lacks " + reasons.keys.map(\.rawValue).sorted().joined(separator: ", ")
            }
            if !library.missingSymbols.isEmpty {
                detail += "; the library lacks " + library.missingSymbols.joined(separator: ", ")
            }
            return Finding(sensor: "nvidia", works: !sensor.gpus.isEmpty, series: series, detail: detail)
        } catch {
            return Finding(sensor: "nvidia", works: false, series: 0, detail: "\(error)")
        }
    }

    /// The database's size on disk and in use (read-only, also while an agent writes to it).
    func database(_ path: String) async -> Finding {
        guard access(path, F_OK) == 0 else {
            return Finding(sensor: "database", works: false, series: 0, detail: "no database at \(path) yet")
        }
        do {
            let store = try Store.openReadOnly(path: path)
            let size: Store.Size
            do {
                size = try await store.size()
                await store.close()
            } catch {
                await store.close()
                throw error
            }
            func megabytes(_ bytes: Int64) -> String {
                let tenths = Int64((Double(bytes) / 1e5).rounded())
                return "\(tenths / 10).\(tenths % 10) MB"
            }
            return Finding(
                sensor: "database", works: true, series: 0,
                detail: "\(path): \(megabytes(size.fileBytes)) on disk (with its WAL), \(megabytes(size.usedBytes)) in use")
        } catch {
            return Finding(sensor: "database", works: false, series: 0, detail: "\(path): \(error)")
        }
    }

    /// Where forwarding stands, per upstream: from the running agent's Health, else (no agent
    /// answering) what its database says.
    func upstreams(socket: String, database: String) async -> [Finding] {
        if let health = try? await AgentClient.with(.unixSocket(socket), { client in
            var options = CallOptions.defaults
            options.timeout = .seconds(2)
            return try await client.agent.health(.init(), options: options)
        }) {
            return health.upstreams.map { upstream in
                var detail = "acknowledged seq \(upstream.acknowledgedSeq), \(upstream.recordsBehind) behind"
                if upstream.recordsBehind > 0 { detail += " (\(Int(upstream.secondsBehind)) s)" }
                detail += ", \(upstream.quarantined) quarantined, \(upstream.skippedRecords) skipped"
                detail += upstream.lastError.isEmpty ? (upstream.connected ? "; connected" : "") : "; last error: \(upstream.lastError)"
                return Finding(
                    sensor: "upstream \(upstream.target)", works: upstream.lastError.isEmpty, series: 0, detail: detail)
            }
        }
        guard access(database, F_OK) == 0, let store = try? Store.openReadOnly(path: database) else { return [] }
        let progress = try? await store.forwardProgress()
        await store.close()
        guard let (state, last) = progress else { return [] }
        return [Finding(
            sensor: "upstream", works: state.acknowledged >= last, series: 0,
            detail: "no agent answers on \(socket); the database says: acknowledged seq \(state.acknowledged), \(max(0, last - state.acknowledged)) behind, \(state.quarantined) quarantined, \(state.skippedRecords) skipped")]
    }

    func udev() -> Finding {
        guard sysRoot == "/sys" else {
            return Finding(sensor: "udev", works: false, series: 0, detail: "not used with --sys-root: disk identities come from \(sysRoot)/block")
        }
        do {
            let udev = try Udev()
            // Without udevd's database (most containers) libudev knows no models or serials.
            let database = access("/run/udev/data", R_OK | X_OK) == 0
            return Finding(
                sensor: "udev", works: database, series: 0,
                detail: database
                    ? "\(udev.path) loaded: disk models, serials and names from udev's database"
                    : "\(udev.path) loaded, but there is no udev database (/run/udev/data): disk identities come from /sys/block")
        } catch {
            return Finding(sensor: "udev", works: false, series: 0, detail: "\(error): disk identities come from /sys/block")
        }
    }

    func processAccess(_ pid: Int32) -> Finding {
        let sensor = ProcessTreeSensor(procRoot: procRoot)
        let readings = sensor.sample(roots: [pid], seconds: 0)[pid] ?? []
        guard !readings.isEmpty else {
            return Finding(sensor: "process \(pid)", works: false, series: 0, detail: "no process \(pid) under \(procRoot)")
        }
        let io = access("\(procRoot)/\(pid)/io", R_OK) == 0
        return Finding(
            sensor: "process \(pid)", works: true, series: readings.count,
            detail: io ? "ok" : "no permission on \(procRoot)/\(pid)/io: no disk I/O rates (run the agent as the trainer's user or root)")
    }
}
