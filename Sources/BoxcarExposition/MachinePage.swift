import BoxcarSampling
import BoxcarSensors

/// The machine's last tick as exposition families: every series of the table that the tick has,
/// the host's first, then each attached trainer's with `experiment_id` and `pid`.
///
/// A trainer's processes are shown one by one, the `processLimit` busiest (by CPU over the last
/// interval, then memory) by their PID and the rest summed into `pid="other"`, so a tree of
/// thousands of data-loader workers costs a bounded page. (A process that moves into or out of
/// the busiest makes `other`'s counters step down: Prometheus reads that as a counter reset.)
public enum MachinePage {
    public static let processLimit = 64

    /// A sample waiting for its family's turn: the reading's own labels (shared, not copied).
    struct Pending {
        var experiment: String?
        var labels: [Reading.Label]
        var value: Double
    }

    public static func write(_ snapshot: MachineSnapshot, into writer: inout ExpositionWriter, processLimit: Int = processLimit) {
        // Each family's samples, gathered in one pass over the readings, by the table's order.
        var families = [[Pending]](repeating: [], count: ExpositionNames.entries.count)
        func add(_ name: String, _ pending: Pending) {
            if let index = ExpositionNames.indexBySeries[name] { families[index].append(pending) }
        }
        for reading in snapshot.host {
            add(reading.name, Pending(experiment: nil, labels: reading.labels, value: reading.value))
        }
        for trainer in snapshot.trainers {
            let experiment = trainer.experimentID
            // The tree's totals are the per-process series' sums; its cgroup and GPU memory stay.
            var gpu: [Reading] = []
            for reading in trainer.readings where !reading.name.hasPrefix("process.") {
                if reading.name == "hw.gpu.process.memory.usage" {
                    gpu.append(reading)
                } else {
                    add(reading.name, Pending(experiment: experiment, labels: reading.labels, value: reading.value))
                }
            }
            let (shown, other) = busiest(trainer.processes, limit: processLimit)
            let shownPIDs = Set(shown.map(\.pid))
            for process in shown + (other.map { [$0] } ?? []) {
                let pid = Reading.Label("process.pid", shownPIDs.contains(process.pid) ? String(process.pid) : "other")
                let labels = [pid]
                add("process.cpu.time", Pending(experiment: experiment, labels: labels, value: process.cpuSeconds))
                add("process.memory.usage", Pending(experiment: experiment, labels: labels, value: process.residentBytes))
                add("process.thread.count", Pending(experiment: experiment, labels: labels, value: process.threads))
                if let descriptors = process.descriptors {
                    add("process.unix.file_descriptor.count", Pending(experiment: experiment, labels: labels, value: descriptors))
                }
                if let read = process.readBytes, let write = process.writeBytes {
                    add("process.disk.io", Pending(experiment: experiment, labels: [.init("disk.io.direction", "read"), pid], value: read))
                    add("process.disk.io", Pending(experiment: experiment, labels: [.init("disk.io.direction", "write"), pid], value: write))
                }
            }
            // GPU memory of the processes shown; the others' summed per GPU.
            var others: [[Reading.Label]: Double] = [:]
            var otherOrder: [[Reading.Label]] = []
            for reading in gpu {
                let pid = reading.labels.first { $0.name == "process.pid" }?.value
                if let pid, let number = Int32(pid), shownPIDs.contains(number) {
                    add(reading.name, Pending(experiment: experiment, labels: reading.labels, value: reading.value))
                } else {
                    let device = reading.labels.filter { $0.name != "process.pid" }
                    if others[device] == nil { otherOrder.append(device) }
                    others[device, default: 0] += reading.value
                }
            }
            for device in otherOrder {
                let labels = (device + [Reading.Label("process.pid", "other")]).sorted { $0.name < $1.name }
                add("hw.gpu.process.memory.usage", Pending(experiment: experiment, labels: labels, value: others[device]!))
            }
        }
        for (entry, samples) in zip(ExpositionNames.entries, families) where !samples.isEmpty {
            writer.family(entry.family)
            for sample in samples {
                writer.sample(entry.family, experiment: sample.experiment, labels: sample.labels, value: sample.value)
            }
        }
    }

    /// The `limit` busiest processes, and the rest summed (nil when there is no rest).
    static func busiest(
        _ processes: [ProcessTreeSensor.ProcessSample], limit: Int
    ) -> (shown: [ProcessTreeSensor.ProcessSample], other: ProcessTreeSensor.ProcessSample?) {
        guard processes.count > limit else { return (processes, nil) }
        let ranked = processes.sorted {
            ($0.cpuUtilization, $0.residentBytes, -$0.pid) > ($1.cpuUtilization, $1.residentBytes, -$1.pid)
        }
        let shown = ranked.prefix(limit).sorted { $0.pid < $1.pid }
        var other = ProcessTreeSensor.ProcessSample(
            pid: -1, cpuSeconds: 0, cpuUtilization: 0, residentBytes: 0, threads: 0, descriptors: nil, readBytes: nil, writeBytes: nil)
        for process in ranked.dropFirst(limit) {
            other.cpuSeconds += process.cpuSeconds
            other.cpuUtilization += process.cpuUtilization
            other.residentBytes += process.residentBytes
            other.threads += process.threads
            if let descriptors = process.descriptors { other.descriptors = (other.descriptors ?? 0) + descriptors }
            if let read = process.readBytes { other.readBytes = (other.readBytes ?? 0) + read }
            if let write = process.writeBytes { other.writeBytes = (other.writeBytes ?? 0) + write }
        }
        return (Array(shown), other)
    }
}
