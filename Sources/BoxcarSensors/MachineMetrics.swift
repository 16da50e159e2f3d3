/// Every series the sensors write: its name, unit, kind and labels, and whether it is
/// OpenTelemetry's (semantic conventions 1.44, the version of the swift-otel-semantic-conventions
/// package) or the agent's own. The README's table of machine metrics is written from here
/// (`boxcar settings metrics`), and `MetricNamingTests` checks it against the conventions and
/// against what the sensors read from the fixtures.
///
/// Counters have OpenTelemetry's names and mean what it means (`system.disk.io`: bytes since
/// boot); the rates the agent stores to plot stand beside them as `<counter>.rate` (per second).
/// A counter beside a rate (and the NVLink error counters) is stored only while remote write is
/// on: each stored series costs the idle agent. Counts without a rate (`hw.energy`, `hw.errors`,
/// `hw.gpu.pcie.replays`) are stored whenever read: every tick, and the GPUs' slow counters
/// (`NVIDIAGPUSensor.slowMetrics`: energy, PCIe replays) every 10 s.
public enum MachineMetrics {
    public enum Kind: String, Sendable {
        /// Only rises (but for a reboot or a driver reload).
        case counter
        /// A value as it stands (OpenTelemetry's gauge and updowncounter).
        case gauge
        /// A counter's rise per second between two samples, or a share of the interval.
        case rate
    }

    public enum Convention: Sendable, Equatable {
        /// OpenTelemetry's name, unit and attributes; `beyond`: labels the agent adds.
        case openTelemetry(beyond: [String] = [])
        /// The agent's own name: OpenTelemetry has none for it.
        case own
    }

    public struct Metric: Sendable {
        public var name: String
        /// As OpenTelemetry writes units (UCUM): `By`, `s`, `1`, `{packet}`, `By/s`, …
        public var unit: String
        public var kind: Kind
        /// Every label it may have.
        public var labels: [String]
        public var convention: Convention
        public var meaning: String
        public var source: String

        init(_ name: String, _ unit: String, _ kind: Kind, _ labels: [String] = [], _ convention: Convention, _ meaning: String, source: String = "") {
            self.name = name
            self.unit = unit
            self.kind = kind
            self.labels = labels
            self.convention = convention
            self.meaning = meaning
            self.source = source
        }
    }

    static let otel = Convention.openTelemetry()
    static let cpu = ["cpu.logical_number", "cpu.mode"]
    static let disk = ["disk.io.direction", "system.device"]
    static let filesystem = ["system.device", "system.filesystem.mode", "system.filesystem.mountpoint", "system.filesystem.type"]
    static let network = ["network.interface.name", "network.io.direction", "port"]
    static let gpu = ["hw.id", "hw.model", "hw.vendor", "index"]
    static let gpuBeyond = ["hw.model", "hw.vendor", "index"]

    public static let all: [Metric] = [
        // CPU and processes (/proc/stat, /proc/loadavg)
        .init("system.cpu.utilization", "1", .rate, cpu, otel, "Share of the interval each mode held (`cpu.mode`: user, nice, system, idle, iowait, interrupt, softirq, steal); without `cpu.logical_number`, of all CPUs", source: "`/proc/stat`, `CPUSensor.swift`"),
        .init("system.cpu.time", "s", .counter, cpu, otel, "CPU time in each mode since boot, per CPU", source: "`/proc/stat`"),
        .init("system.cpu.context_switches.rate", "{context_switch}/s", .rate, [], .own, "Context switches per second", source: "`/proc/stat` `ctxt`"),
        .init("system.cpu.context_switches", "{context_switch}", .counter, [], .own, "Context switches since boot", source: "`/proc/stat` `ctxt`"),
        .init("system.cpu.load_average.1m", "1", .gauge, [], .own, "Load average over 1 minute (`.5m`, `.15m` likewise)", source: "`/proc/loadavg`"),
        .init("system.cpu.load_average.5m", "1", .gauge, [], .own, "Load average over 5 minutes", source: "`/proc/loadavg`"),
        .init("system.cpu.load_average.15m", "1", .gauge, [], .own, "Load average over 15 minutes", source: "`/proc/loadavg`"),
        .init("system.process.count", "{process}", .gauge, ["process.state"], otel, "Processes running (runnable now) and blocked (waiting on I/O)", source: "`/proc/stat` `procs_running`, `procs_blocked`"),
        .init("system.process.created.rate", "{process}/s", .rate, [], .own, "Processes created (forks) per second", source: "`/proc/stat` `processes`"),
        .init("system.process.created", "{process}", .counter, [], otel, "Processes created since boot", source: "`/proc/stat` `processes`"),
        .init("system.file_handles.usage", "{file_handle}", .gauge, [], .own, "File handles allocated, machine-wide", source: "`/proc/sys/fs/file-nr`, `FileHandleSensor.swift`"),
        .init("system.file_handles.limit", "{file_handle}", .gauge, [], .own, "The machine's file handle limit (fs.file-max)", source: "`/proc/sys/fs/file-nr`"),
        // Memory (/proc/meminfo, /proc/vmstat)
        .init("system.memory.limit", "By", .gauge, [], otel, "Memory installed (MemTotal)", source: "`/proc/meminfo`, `MemorySensor.swift`"),
        .init("system.memory.usage", "By", .gauge, ["system.memory.state"], otel, "Memory by state, summing to the limit as `free` counts: free, buffers, cached (page cache and reclaimable slab), used (the rest)", source: "`/proc/meminfo`"),
        .init("system.memory.linux.available", "By", .gauge, [], otel, "Memory available to processes without swapping (MemAvailable)", source: "`/proc/meminfo`"),
        .init("system.memory.linux.shared", "By", .gauge, [], otel, "Shared memory and tmpfs (Shmem; part of cached)", source: "`/proc/meminfo`"),
        .init("system.memory.linux.slab.usage", "By", .gauge, ["system.memory.linux.slab.state"], otel, "Kernel slab memory, reclaimable and unreclaimable", source: "`/proc/meminfo`"),
        .init("system.memory.linux.dirty", "By", .gauge, [], .own, "Memory waiting to be written back to disk (Dirty)", source: "`/proc/meminfo`"),
        .init("system.memory.linux.committed", "By", .gauge, [], .own, "Memory promised to processes (Committed_AS)", source: "`/proc/meminfo`"),
        .init("system.memory.linux.hugepages.limit", "{page}", .gauge, [], otel, "Huge pages set aside (no series where none are)", source: "`/proc/meminfo`"),
        .init("system.memory.linux.hugepages.usage", "{page}", .gauge, ["system.memory.linux.hugepages.state"], otel, "Huge pages used and free", source: "`/proc/meminfo`"),
        .init("system.memory.linux.hugepages.reserved", "{page}", .gauge, [], otel, "Huge pages promised but not yet used", source: "`/proc/meminfo`"),
        .init("system.memory.linux.hugepages.surplus", "{page}", .gauge, [], otel, "Huge pages beyond those set aside", source: "`/proc/meminfo`"),
        .init("system.memory.linux.hugepages.page_size", "By", .gauge, [], otel, "The size of a huge page", source: "`/proc/meminfo`"),
        .init("system.paging.limit", "By", .gauge, [], .own, "Swap space", source: "`/proc/meminfo`"),
        .init("system.paging.usage", "By", .gauge, ["system.paging.state"], otel, "Swap space used and free", source: "`/proc/meminfo`"),
        .init("system.paging.faults.rate", "{fault}/s", .rate, ["system.paging.fault.type"], .own, "Major page faults (pages read back from disk) per second", source: "`/proc/vmstat` `pgmajfault`, `VMStatSensor.swift`"),
        .init("system.paging.faults", "{fault}", .counter, ["system.paging.fault.type"], otel, "Major page faults since boot", source: "`/proc/vmstat`"),
        .init("system.paging.operations.rate", "{operation}/s", .rate, ["system.paging.direction"], .own, "Pages swapped in and out per second", source: "`/proc/vmstat` `pswpin`, `pswpout`"),
        .init("system.paging.operations", "{operation}", .counter, ["system.paging.direction"], otel, "Pages swapped in and out since boot", source: "`/proc/vmstat`"),
        .init("system.memory.oom_kills.rate", "{process}/s", .rate, [], .own, "Processes the OOM killer killed, per second", source: "`/proc/vmstat` `oom_kill` (Linux 4.13+)"),
        .init("system.memory.oom_kills", "{process}", .counter, [], .own, "Processes the OOM killer killed since boot", source: "`/proc/vmstat`"),
        // Pressure
        .init("system.pressure.avg10", "1", .gauge, ["kind", "resource"], .own, "Share of the last 10 s tasks stalled on the resource (cpu, memory, io; `kind` some: one task, full: all; no machine-wide cpu full, always 0)", source: "`/proc/pressure/*`, `PressureSensor.swift`"),
        .init("system.pressure.stall.rate", "s/s", .rate, ["kind", "resource"], .own, "Stalled seconds per second", source: "`/proc/pressure/*`"),
        .init("system.pressure.stall", "s", .counter, ["kind", "resource"], .own, "Stalled seconds since boot", source: "`/proc/pressure/*`"),
        // The agent's cgroup (under host) or a trainer's (under its experiment, with process.pid)
        .init("container.memory.usage", "By", .gauge, ["process.pid"], .openTelemetry(beyond: ["process.pid"]), "Memory charged to the cgroup (no limit: no series); under an attached experiment, of its trainer's cgroup (`process.pid`: the trainer)", source: "cgroup v2 `memory.current`; v1 `memory.usage_in_bytes` (hierarchies from `/proc/self/mountinfo`), `CgroupSensor.swift`"),
        .init("container.memory.limit", "By", .gauge, ["process.pid"], .own, "The cgroup's memory limit", source: "cgroup v2 `memory.max`; v1 `memory.limit_in_bytes`"),
        .init("container.memory.oom_kills", "{process}", .counter, ["process.pid"], .own, "Processes of the cgroup the OOM killer killed; a rise in a trainer's cgroup is also a `memory.oom_kill` event of its experiment", source: "cgroup v2 `memory.events` `oom_kill`; v1 `memory.oom_control` (Linux 4.13+)"),
        .init("container.cpu.limit", "{cpu}", .gauge, ["process.pid"], .own, "The cgroup's CPU quota, in CPUs", source: "cgroup v2 `cpu.max`; v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`"),
        .init("container.cpu.usage", "{cpu}", .rate, ["process.pid"], .openTelemetry(beyond: ["process.pid"]), "CPUs busy for the cgroup", source: "cgroup v2 `cpu.stat`; v1 `cpuacct.usage`"),
        .init("container.cpu.time", "s", .counter, ["process.pid"], .openTelemetry(beyond: ["process.pid"]), "CPU time the cgroup used", source: "as above"),
        .init("container.cpu.throttled.rate", "s/s", .rate, ["process.pid"], .own, "Throttled seconds per second (its CPU quota)", source: "cgroup v2 `cpu.stat`; v1 `cpu.stat` `throttled_time`"),
        .init("container.cpu.throttled", "s", .counter, ["process.pid"], .own, "Time the cgroup was throttled", source: "as above"),
        // Disks (/proc/diskstats: whole disks in /sys/block, loop and ram skipped)
        .init("system.disk.io.rate", "By/s", .rate, disk, .own, "Bytes read and written per second", source: "`/proc/diskstats`, `DiskSensor.swift`"),
        .init("system.disk.io", "By", .counter, disk, otel, "Bytes read and written since boot", source: "`/proc/diskstats`"),
        .init("system.disk.operations.rate", "{operation}/s", .rate, disk, .own, "Reads and writes completed per second", source: "`/proc/diskstats`"),
        .init("system.disk.operations", "{operation}", .counter, disk, otel, "Reads and writes completed since boot", source: "`/proc/diskstats`"),
        .init("system.disk.operation_time.rate", "s/s", .rate, disk, .own, "Seconds spent on reads and writes per second (over `system.disk.operations.rate`: the average time an operation took)", source: "`/proc/diskstats`"),
        .init("system.disk.operation_time", "s", .counter, disk, otel, "Time spent on reads and writes", source: "`/proc/diskstats`"),
        .init("system.disk.merged.rate", "{operation}/s", .rate, disk, .own, "Reads and writes merged with a neighbour before they reached the disk, per second", source: "`/proc/diskstats`"),
        .init("system.disk.merged", "{operation}", .counter, disk, otel, "Reads and writes merged since boot", source: "`/proc/diskstats`"),
        .init("system.disk.discards.rate", "{operation}/s", .rate, ["system.device"], .own, "Discards (TRIM) completed per second", source: "`/proc/diskstats` (Linux 4.18+)"),
        .init("system.disk.discards", "{operation}", .counter, ["system.device"], .own, "Discards completed since boot", source: "`/proc/diskstats` (Linux 4.18+)"),
        .init("system.disk.pending_operations", "{operation}", .gauge, ["system.device"], .own, "I/Os in flight now", source: "`/proc/diskstats`"),
        .init("system.disk.io_time", "s", .counter, ["system.device"], otel, "Time the disk was busy", source: "`/proc/diskstats`"),
        .init("system.disk.weighted_io_time", "s", .counter, ["system.device"], .own, "Busy time weighted by the requests in flight", source: "`/proc/diskstats`"),
        .init("system.disk.busy", "1", .rate, ["system.device"], .own, "Share of the interval the disk was busy (`system.disk.io_time`'s rate)", source: "`/proc/diskstats`"),
        .init("system.disk.queue_length", "{request}", .rate, ["system.device"], .own, "Average requests in flight (`system.disk.weighted_io_time`'s rate)", source: "`/proc/diskstats`"),
        .init("system.disk.info", "1", .gauge, ["model", "name", "serial", "system.device"], .own, "1; the labels are the disk's model, serial and (device-mapper, md) given name", source: "libudev (`dlopen`), else `/sys/block/DEV/{device/model,device/serial,serial,dm/name}`, `DiskIdentity.swift`"),
        // Filesystems (/proc/self/mountinfo and statvfs, every 10th sample)
        .init("system.filesystem.usage", "By", .gauge, filesystem + ["system.filesystem.state"], otel, "Bytes used, free (to non-root) and reserved (for root), summing to the limit as `df`'s use% counts; `system.filesystem.mode`: rw or ro", source: "statvfs, pseudo filesystems skipped but `/dev/shm`, `FilesystemSensor.swift`"),
        .init("system.filesystem.limit", "By", .gauge, filesystem, otel, "Size of the filesystem", source: "statvfs"),
        .init("system.filesystem.inodes.usage", "{inode}", .gauge, filesystem + ["system.filesystem.state"], .own, "Inodes used", source: "statvfs"),
        .init("system.filesystem.inodes.limit", "{inode}", .gauge, filesystem, .own, "Inodes in all", source: "statvfs"),
        // Network (/proc/net/dev, physical interfaces; InfiniBand ports with `port`)
        .init("system.network.io.rate", "By/s", .rate, network, .own, "Bytes received and transmitted per second", source: "`/proc/net/dev`, `NetworkSensor.swift`; `/sys/class/infiniband/*/ports/*/counters`, `InfiniBandSensor.swift`"),
        .init("system.network.io", "By", .counter, network, .openTelemetry(beyond: ["port"]), "Bytes received and transmitted since boot", source: "as above"),
        .init("system.network.packet.count.rate", "{packet}/s", .rate, network, .own, "Packets per second", source: "`/proc/net/dev`"),
        // OpenTelemetry 1.44 names the interface `system.device` here alone; the agent keeps one
        // name for it across its network series.
        .init("system.network.packet.count", "{packet}", .counter, network, .openTelemetry(beyond: ["network.interface.name", "port"]), "Packets since boot (the interface as `network.interface.name`, as in the other network series, not `system.device`)", source: "`/proc/net/dev`"),
        .init("system.network.packet.dropped.rate", "{packet}/s", .rate, network, .own, "Packets dropped per second", source: "`/proc/net/dev`"),
        .init("system.network.packet.dropped", "{packet}", .counter, network, .openTelemetry(beyond: ["port"]), "Packets dropped since boot", source: "`/proc/net/dev`"),
        .init("system.network.errors.rate", "{error}/s", .rate, network, .own, "Receive and transmit errors per second", source: "`/proc/net/dev`"),
        .init("system.network.errors", "{error}", .counter, network, .openTelemetry(beyond: ["port"]), "Receive and transmit errors since boot", source: "`/proc/net/dev`"),
        .init("system.network.interface.up", "1", .gauge, ["network.interface.name"], .own, "1 while the interface's link is up (`operstate`), else 0", source: "`/sys/class/net/IF/operstate`"),
        .init("system.network.interface.speed", "By/s", .gauge, ["network.interface.name"], .own, "The link's speed (none while it is down)", source: "`/sys/class/net/IF/speed`"),
        .init("system.network.interface.mtu", "By", .gauge, ["network.interface.name"], .own, "The interface's MTU", source: "`/sys/class/net/IF/mtu`"),
        .init("system.network.tcp.retransmits.rate", "{segment}/s", .rate, [], .own, "TCP segments retransmitted per second", source: "`/proc/net/snmp` `RetransSegs` (the agent's network namespace), `NetstatSensor.swift`"),
        .init("system.network.tcp.retransmits", "{segment}", .counter, [], .own, "TCP segments retransmitted since boot", source: "`/proc/net/snmp`"),
        .init("system.network.connection.count", "{connection}", .gauge, ["network.connection.state", "network.transport"], otel, "TCP connections established", source: "`/proc/net/snmp` `CurrEstab`"),
        .init("system.network.sockets", "{socket}", .gauge, ["network.transport"], .own, "Sockets in use: all (no `network.transport`), tcp, udp", source: "`/proc/net/sockstat`"),
        // An attached trainer's process tree (under its experiment; process.pid: the root)
        .init("process.cpu.utilization", "1", .rate, ["process.pid"], .openTelemetry(beyond: ["process.pid"]), "Share of all CPUs the tree used", source: "`/proc/PID/stat` of the root and its descendants, `ProcessTreeSensor.swift`"),
        .init("process.cpu.time", "s", .counter, ["process.pid"], .openTelemetry(beyond: ["process.pid"]), "CPU time of the tree (a running sum that only rises)", source: "as above"),
        .init("process.memory.usage", "By", .gauge, ["process.pid"], .openTelemetry(beyond: ["process.pid"]), "Resident memory of the tree", source: "`/proc/PID/stat`"),
        .init("process.thread.count", "{thread}", .gauge, ["process.pid"], .openTelemetry(beyond: ["process.pid"]), "Threads of the tree", source: "`/proc/PID/stat`"),
        .init("process.unix.file_descriptor.count", "{file_descriptor}", .gauge, ["process.pid"], .openTelemetry(beyond: ["process.pid"]), "Open file descriptors of the tree", source: "`/proc/PID/fd`"),
        .init("process.count", "{process}", .gauge, ["process.pid"], .own, "Processes in the tree", source: "`/proc`"),
        .init("process.disk.io.rate", "By/s", .rate, ["disk.io.direction", "process.pid"], .own, "Bytes the tree read and wrote to storage per second", source: "`/proc/PID/io`, where readable"),
        .init("process.disk.io", "By", .counter, ["disk.io.direction", "process.pid"], .openTelemetry(beyond: ["process.pid"]), "Bytes the tree read and wrote (a running sum that only rises)", source: "`/proc/PID/io`"),
        // GPUs: NVIDIA through NVML (hw.id: the UUID, hw.model: the name, index: nvidia-smi's);
        // AMD through sysfs (hw.vendor="amd", index: the card's number)
        .init("hw.gpu.utilization", "1", .rate, gpu + ["hw.gpu.task"], .openTelemetry(beyond: ["index"]), "Share of the last sample period a kernel ran; with `hw.gpu.task`, the video encoder or decoder was busy", source: "NVML, `NVIDIAGPUSensor.swift`; AMD `gpu_busy_percent`, `AMDGPUSensor.swift`"),
        .init("hw.gpu.memory.activity", "1", .rate, gpu, .own, "Share of the last sample period device memory was read or written (not OpenTelemetry's `hw.gpu.memory.utilization`, the share in use)", source: "NVML"),
        .init("hw.gpu.memory.usage", "By", .gauge, gpu, .openTelemetry(beyond: ["index"]), "Device memory in use (leaving out what the driver reserves, as nvidia-smi shows)", source: "NVML `nvmlDeviceGetMemoryInfo_v2`; AMD `mem_info_vram_used`"),
        .init("hw.gpu.memory.limit", "By", .gauge, gpu, .openTelemetry(beyond: ["index"]), "Device memory installed", source: "NVML; AMD `mem_info_vram_total`"),
        .init("hw.gpu.memory.reserved", "By", .gauge, gpu, .own, "Device memory the driver reserves", source: "NVML"),
        .init("hw.gpu.memory.gtt.usage", "By", .gauge, gpu, .own, "System memory mapped for the GPU (GTT) in use", source: "AMD `mem_info_gtt_used`"),
        .init("hw.gpu.memory.gtt.limit", "By", .gauge, gpu, .own, "System memory the GPU may map (GTT)", source: "AMD `mem_info_gtt_total`"),
        .init("hw.temperature", "Cel", .gauge, gpu + ["hw.sensor_location"], .openTelemetry(beyond: gpuBeyond), "GPU temperature (AMD: each hwmon sensor, `hw.sensor_location` edge, junction, mem)", source: "NVML; AMD hwmon `temp*_input`, `temp*_label`"),
        .init("hw.power", "W", .gauge, gpu + ["hw.type"], .openTelemetry(beyond: gpuBeyond), "Power draw", source: "NVML; AMD hwmon `power1_average`"),
        .init("hw.power.limit", "W", .gauge, gpu + ["hw.type"], .own, "Enforced power limit", source: "NVML"),
        .init("hw.energy", "J", .counter, gpu + ["hw.type"], .openTelemetry(beyond: gpuBeyond), "Energy used since the driver loaded", source: "NVML"),
        .init("hw.gpu.clock", "Hz", .gauge, gpu + ["clock"], .own, "Clock frequency (`clock`: graphics, sm, memory)", source: "NVML; AMD hwmon `freq*_input` (sclk, mclk)"),
        .init("hw.gpu.io.rate", "By/s", .gauge, gpu + ["network.io.direction"], .own, "PCIe throughput: over the tick from GPM (Hopper on), else the driver's 20 ms sample (OpenTelemetry's `hw.gpu.io` is a counter, which NVML gives only as 32 bits that wrap at 4 GiB)", source: "NVML"),
        .init("hw.fan.speed_ratio", "1", .gauge, gpu, .openTelemetry(beyond: gpuBeyond), "Fan speed as a share of its maximum", source: "NVML"),
        .init("hw.gpu.clocks_event", "1", .gauge, gpu + ["reason"], .own, "1 while the reason (gpu_idle, sw_power_cap, hw_slowdown, sw_thermal_slowdown, …) holds the clocks down, else 0", source: "NVML"),
        .init("hw.errors", "{error}", .counter, gpu + ["error.type", "hw.type"], .openTelemetry(beyond: gpuBeyond), "Volatile ECC errors (`error.type`: corrected, uncorrected)", source: "NVML"),
        .init("hw.gpu.pcie.replays", "{replay}", .counter, gpu, .own, "PCIe transfers the link had to replay (a flaky riser or slot shows here first)", source: "NVML `nvmlDeviceGetPcieReplayCounter`"),
        .init("hw.gpu.memory.remapped_rows", "{row}", .gauge, gpu + ["error.type"], .own, "Memory rows remapped after corrected and uncorrected errors", source: "NVML `nvmlDeviceGetRemappedRows` (Ampere and newer)"),
        .init("hw.gpu.memory.remap_pending", "1", .gauge, gpu, .own, "1 while a remap waits for the GPU's reset", source: "NVML"),
        .init("hw.gpu.memory.remap_failed", "1", .gauge, gpu, .own, "1 once a remap failed (the GPU needs service)", source: "NVML"),
        .init("hw.gpu.memory.retired_pages", "{page}", .gauge, gpu + ["cause"], .own, "Memory pages retired (`cause`: single_bit_ecc, double_bit_ecc)", source: "NVML `nvmlDeviceGetRetiredPages` (before Ampere)"),
        .init("hw.gpu.violation_time.rate", "s/s", .rate, gpu + ["reason"], .own, "Share of the time the clocks were held below the application clocks (`reason`: power, thermal)", source: "NVML `nvmlDeviceGetViolationStatus` (field values 74 and 75 where a driver has retired it), over the driver's reference clock"),
        .init("hw.gpu.violation_time", "s", .counter, gpu + ["reason"], .own, "Time the clocks were held down since the driver loaded", source: "NVML"),
        .init("hw.gpu.nvlink.io.rate", "By/s", .rate, gpu + ["network.io.direction", "nvlink"], .own, "Data sent and received over each active NVLink per second", source: "NVML field values `NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX`, `_RX` (`nvlink`: the link), over the driver's clock"),
        .init("hw.gpu.nvlink.io", "By", .counter, gpu + ["network.io.direction", "nvlink"], .own, "Data sent and received over the link", source: "NVML"),
        .init("hw.gpu.nvlink.errors", "{error}", .counter, gpu + ["error.type", "nvlink"], .own, "Each link's errors (`error.type`: replay, recovery, crc_flit, crc_data)", source: "NVML `nvmlDeviceGetNvLinkErrorCounter`"),
        .init("hw.gpu.sm.activity", "1", .rate, gpu, .own, "Share of the SMs busy over the last tick (what nvidia-smi's utilization does not say: one busy SM counts as a busy GPU there)", source: "NVML GPM `NVML_GPM_METRIC_SM_UTIL` (Hopper and newer), between this tick's sample and the last"),
        .init("hw.gpu.sm.occupancy", "1", .rate, gpu, .own, "Warps resident on the SMs, of the most they could hold", source: "NVML GPM `SM_OCCUPANCY`"),
        .init("hw.gpu.tensor.activity", "1", .rate, gpu, .own, "Share of the time the SMs ran tensor (MMA) instructions", source: "NVML GPM `ANY_TENSOR_UTIL`"),
        .init("hw.gpu.dram.activity", "1", .rate, gpu, .own, "Device memory bandwidth used, of its peak", source: "NVML GPM `DRAM_BW_UTIL`"),
        .init("hw.gpu.pipe.activity", "1", .rate, gpu + ["pipe"], .own, "Share of the time the SMs ran non-tensor math of each precision (`pipe`: fp64, fp32, fp16)", source: "NVML GPM `FP64_UTIL`, `FP32_UTIL`, `FP16_UTIL`"),
        .init("hw.gpu.mig.mode", "1", .gauge, gpu, .own, "1 when the GPU is in MIG mode", source: "NVML"),
        .init("hw.gpu.mig.memory.usage", "By", .gauge, gpu + ["mig", "mig_uuid"], .own, "Device memory in use by MIG instance (`mig`: its slot); `.limit`, `.reserved` likewise", source: "NVML `nvmlDeviceGetMigDeviceHandleByIndex`"),
        .init("hw.gpu.mig.memory.limit", "By", .gauge, gpu + ["mig", "mig_uuid"], .own, "Device memory of the MIG instance", source: "NVML"),
        .init("hw.gpu.mig.memory.reserved", "By", .gauge, gpu + ["mig", "mig_uuid"], .own, "Device memory the driver reserves in the MIG instance", source: "NVML"),
        .init("hw.gpu.process.memory.usage", "By", .gauge, gpu + ["process.pid"], .own, "Device memory an attached trainer's process holds (under its experiment)", source: "NVML"),
    ]

    public static let byName: [String: Metric] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
}

extension MachineMetrics {
    /// Between these lines of README.md stands the table below.
    public static let readmeStart = "<!-- machine metrics: written by Scripts/generate-settings-docs.sh from Sources/BoxcarSensors/MachineMetrics.swift -->"
    public static let readmeEnd = "<!-- end of machine metrics -->"

    /// The README's table of machine metrics.
    public static func markdownTable() -> String {
        var lines = ["| name | unit | kind | labels | what it is | from |", "| --- | --- | --- | --- | --- | --- |"]
        for metric in all {
            let name: String
            switch metric.convention {
            case .openTelemetry(let beyond):
                name = "`\(metric.name)`" + (beyond.isEmpty ? "" : " (" + beyond.map { "`\($0)`" }.joined(separator: ", ") + ": the agent's)")
            case .own:
                name = "`\(metric.name)` (the agent's own)"
            }
            let labels = metric.labels.map { "`\($0)`" }.joined(separator: ", ")
            lines.append("| \(name) | `\(metric.unit)` | \(metric.kind.rawValue) | \(labels) | \(metric.meaning) | \(metric.source) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
