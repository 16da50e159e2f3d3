/// The machine series' names before they followed OpenTelemetry's semantic conventions
/// (schema version 8 of the agent's file, version 3 of the collector's), and what each is now.
/// Databases written before keep their points: the agent's migration and the collector's rename
/// the keys they hold, a read-only look at an older agent's file sees them renamed, and the
/// collector renames what an older agent still forwards.
///
/// Before, a rate stood under the counter's OpenTelemetry name (`system.disk.io` in bytes per
/// second) and the counter beside it under `….cumulative`. Now the counter has the name, as
/// OpenTelemetry means it, and the rate says what it is (`system.disk.io.rate`). Label names
/// are OpenTelemetry's attributes (`cpu.mode`, `system.device`, `network.io.direction`, …).
public enum SeriesRenames {
    /// One old name's renaming; the first rule of a name whose `when` holds applies.
    struct Rule {
        var old: String
        var new: String
        /// Only for keys with this label and value.
        var when: (label: String, value: String)? = nil
        /// Old label name → new; labels not named here keep theirs.
        var labels: [String: String] = [:]
        /// Labels to drop (a `when` label that the new name says itself).
        var drop: Set<String> = []
        /// New label name → old value → new value.
        var values: [String: [String: String]] = [:]
        /// Labels the new name has that the old key had not (constant ones).
        var add: [(name: String, value: String)] = []
    }

    static let cpu = ["cpu": "cpu.logical_number", "state": "cpu.mode"]
    static let cpuModes = ["cpu.mode": ["irq": "interrupt"]]
    static let disk = ["device": "system.device", "direction": "disk.io.direction"]
    static let network = ["device": "network.interface.name", "direction": "network.io.direction"]
    static let filesystem = [
        "device": "system.device", "mountpoint": "system.filesystem.mountpoint", "type": "system.filesystem.type",
        "state": "system.filesystem.state",
    ]
    static let trainer = ["pid": "process.pid", "direction": "disk.io.direction"]
    static let gpu = ["uuid": "hw.id", "name": "hw.model", "vendor": "hw.vendor", "pid": "process.pid"]
    static let gpuType = [(name: "hw.type", value: "gpu")]

    static let rules: [Rule] = [
        .init(old: "system.cpu.utilization", new: "system.cpu.utilization", labels: cpu, values: cpuModes),
        .init(old: "system.cpu.time", new: "system.cpu.time", labels: cpu, values: cpuModes),
        .init(old: "system.cpu.context_switches", new: "system.cpu.context_switches.rate"),
        .init(old: "system.cpu.context_switches.cumulative", new: "system.cpu.context_switches"),
        .init(old: "system.process.count", new: "system.process.count", labels: ["status": "process.state"]),
        .init(old: "system.process.created", new: "system.process.created.rate"),
        .init(old: "system.process.created.cumulative", new: "system.process.created"),
        .init(old: "system.memory.usage", new: "system.memory.linux.available", when: ("state", "available"), drop: ["state"]),
        .init(old: "system.memory.usage", new: "system.memory.linux.dirty", when: ("state", "dirty"), drop: ["state"]),
        .init(old: "system.memory.usage", new: "system.memory.usage", labels: ["state": "system.memory.state"]),
        .init(old: "system.paging.usage", new: "system.paging.usage", labels: ["state": "system.paging.state"]),
        .init(old: "system.paging.faults", new: "system.paging.faults.rate", labels: ["type": "system.paging.fault.type"]),
        .init(old: "system.paging.faults.cumulative", new: "system.paging.faults", labels: ["type": "system.paging.fault.type"]),
        .init(old: "system.paging.operations", new: "system.paging.operations.rate", labels: ["direction": "system.paging.direction"]),
        .init(old: "system.paging.operations.cumulative", new: "system.paging.operations", labels: ["direction": "system.paging.direction"]),
        .init(old: "system.memory.oom_kills", new: "system.memory.oom_kills.rate"),
        .init(old: "system.memory.oom_kills.cumulative", new: "system.memory.oom_kills"),
        .init(old: "system.pressure.stall", new: "system.pressure.stall.rate"),
        .init(old: "system.pressure.stall.cumulative", new: "system.pressure.stall"),
        .init(old: "container.memory.usage", new: "container.memory.usage", labels: trainer),
        .init(old: "container.memory.limit", new: "container.memory.limit", labels: trainer),
        .init(old: "container.cpu.limit", new: "container.cpu.limit", labels: trainer),
        .init(old: "container.cpu.usage", new: "container.cpu.usage", labels: trainer),
        .init(old: "container.cpu.time", new: "container.cpu.time", labels: trainer),
        .init(old: "container.cpu.throttled", new: "container.cpu.throttled.rate", labels: trainer),
        .init(old: "container.cpu.throttled.cumulative", new: "container.cpu.throttled", labels: trainer),
        .init(old: "system.disk.io", new: "system.disk.io.rate", labels: disk),
        .init(old: "system.disk.io.cumulative", new: "system.disk.io", labels: disk),
        .init(old: "system.disk.operations", new: "system.disk.operations.rate", labels: disk),
        .init(old: "system.disk.operations.cumulative", new: "system.disk.operations", labels: disk),
        .init(old: "system.disk.operation_time", new: "system.disk.operation_time", labels: disk),
        .init(old: "system.disk.io_time", new: "system.disk.io_time", labels: disk),
        .init(old: "system.disk.weighted_io_time", new: "system.disk.weighted_io_time", labels: disk),
        .init(old: "system.disk.busy", new: "system.disk.busy", labels: disk),
        .init(old: "system.disk.queue_length", new: "system.disk.queue_length", labels: disk),
        .init(old: "system.disk.info", new: "system.disk.info", labels: disk),
        .init(old: "system.filesystem.limit", new: "system.filesystem.limit", labels: filesystem),
        .init(old: "system.filesystem.usage", new: "system.filesystem.usage", labels: filesystem),
        .init(old: "system.filesystem.inodes.limit", new: "system.filesystem.inodes.limit", labels: filesystem),
        .init(old: "system.filesystem.inodes.usage", new: "system.filesystem.inodes.usage", labels: filesystem),
        .init(old: "system.network.io", new: "system.network.io.rate", labels: network),
        .init(old: "system.network.io.cumulative", new: "system.network.io", labels: network),
        .init(old: "system.network.packets", new: "system.network.packet.count.rate", labels: network),
        .init(old: "system.network.packets.cumulative", new: "system.network.packet.count", labels: network),
        .init(old: "system.network.dropped", new: "system.network.packet.dropped.rate", labels: network),
        .init(old: "system.network.dropped.cumulative", new: "system.network.packet.dropped", labels: network),
        .init(old: "system.network.errors", new: "system.network.errors.rate", labels: network),
        .init(old: "system.network.errors.cumulative", new: "system.network.errors", labels: network),
        .init(old: "system.network.tcp.retransmits", new: "system.network.tcp.retransmits.rate"),
        .init(old: "system.network.tcp.retransmits.cumulative", new: "system.network.tcp.retransmits"),
        .init(
            old: "system.network.tcp.established", new: "system.network.connection.count",
            add: [("network.connection.state", "established"), ("network.transport", "tcp")]),
        .init(old: "system.network.sockets", new: "system.network.sockets", labels: ["protocol": "network.transport"]),
        .init(old: "process.cpu.utilization", new: "process.cpu.utilization", labels: trainer),
        .init(old: "process.cpu.time", new: "process.cpu.time", labels: trainer),
        .init(old: "process.memory.usage", new: "process.memory.usage", labels: trainer),
        .init(old: "process.thread.count", new: "process.thread.count", labels: trainer),
        .init(old: "process.count", new: "process.count", labels: trainer),
        .init(old: "process.open_file_descriptor.count", new: "process.unix.file_descriptor.count", labels: trainer),
        .init(old: "process.disk.io", new: "process.disk.io.rate", labels: trainer),
        .init(old: "process.disk.io.cumulative", new: "process.disk.io", labels: trainer),
        .init(old: "hw.gpu.utilization", new: "hw.gpu.utilization", labels: gpu),
        .init(old: "hw.gpu.memory.utilization", new: "hw.gpu.memory.activity", labels: gpu),
        .init(old: "hw.gpu.memory.usage", new: "hw.gpu.memory.usage", labels: gpu),
        .init(old: "hw.gpu.memory.limit", new: "hw.gpu.memory.limit", labels: gpu),
        .init(old: "hw.gpu.memory.reserved", new: "hw.gpu.memory.reserved", labels: gpu),
        // AMD's was the edge sensor's (temp1); its others are new.
        .init(old: "hw.temperature", new: "hw.temperature", when: ("vendor", "amd"), labels: gpu, add: [("hw.sensor_location", "edge")]),
        .init(old: "hw.temperature", new: "hw.temperature", labels: gpu),
        .init(old: "hw.power", new: "hw.power", labels: gpu, add: gpuType),
        .init(old: "hw.power.limit", new: "hw.power.limit", labels: gpu, add: gpuType),
        .init(old: "hw.energy", new: "hw.energy", labels: gpu, add: gpuType),
        .init(old: "hw.gpu.clock", new: "hw.gpu.clock", labels: gpu),
        .init(old: "hw.gpu.io", new: "hw.gpu.io.rate", labels: gpu.merging(["direction": "network.io.direction"]) { $1 }),
        .init(old: "hw.fan.speed_ratio", new: "hw.fan.speed_ratio", labels: gpu),
        .init(old: "hw.gpu.clocks_event", new: "hw.gpu.clocks_event", labels: gpu),
        .init(old: "hw.errors", new: "hw.errors", labels: gpu.merging(["type": "error.type"]) { $1 }, add: gpuType),
        .init(old: "hw.gpu.mig.mode", new: "hw.gpu.mig.mode", labels: gpu),
        .init(old: "hw.gpu.mig.memory.usage", new: "hw.gpu.mig.memory.usage", labels: gpu),
        .init(old: "hw.gpu.mig.memory.limit", new: "hw.gpu.mig.memory.limit", labels: gpu),
        .init(old: "hw.gpu.mig.memory.reserved", new: "hw.gpu.mig.memory.reserved", labels: gpu),
        .init(old: "hw.gpu.process.memory.usage", new: "hw.gpu.process.memory.usage", labels: gpu),
    ]

    static let rulesByName: [String: [Rule]] = Dictionary(grouping: rules, by: \.old)

    /// The current key of a machine series stored under an old one; nil for a key that is not
    /// an old machine series' (an experiment's own metric).
    ///
    /// Only for keys written before the rename (a database of schema 7 or older, an agent of
    /// record version 3 or older): a few current keys are old keys too. The counters without
    /// labels or dotted labels (`system.cpu.context_switches`, `system.process.created`,
    /// `system.memory.oom_kills`, `system.network.tcp.retransmits`, `system.pressure.stall`, a
    /// host's `container.cpu.throttled`) were their rates' names, and would be renamed to `.rate`.
    public static func current(_ key: String) -> String? {
        guard key.hasPrefix("system/"), let parsed = SeriesKey(parsing: key), let candidates = rulesByName[parsed.name] else { return nil }
        // Old keys have no label with a dot: a labelled current key is left alone.
        guard !parsed.labels.contains(where: { $0.name.contains(".") }) else { return nil }
        for rule in candidates {
            if let when = rule.when, !parsed.labels.contains(where: { $0.name == when.label && $0.value == when.value }) { continue }
            var labels: [(name: String, value: String)] = []
            for label in parsed.labels where !rule.drop.contains(label.name) {
                let name = rule.labels[label.name] ?? label.name
                labels.append((name, rule.values[name]?[label.value] ?? label.value))
            }
            labels += rule.add
            let renamed = SeriesKey(name: rule.new, labels: labels).key
            return renamed == key ? nil : renamed
        }
        return nil
    }
}
