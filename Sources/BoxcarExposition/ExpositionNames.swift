/// The one table from the agent's series names to the names monitoring stacks see: `/metrics`,
/// remote write and the README's table all come from here, so renaming a sensor's series changes
/// this file only.
///
/// Names follow OpenTelemetry's Prometheus convention: dots become underscores, the unit is
/// the last word (`_bytes`, `_seconds`, `_ratio`, `_celsius`, `_watts`, `_joules`, `_hertz`),
/// counters end in `_total` and are exposed as counters, never as the rates the agent also
/// stores. No gauge ends in `_count`, `_total`, `_sum`, `_bucket` or `_created`, which
/// Prometheus' tools read as parts of other types (a test checks).
public enum ExpositionNames {
    /// One series name's exposition.
    public struct Entry: Sendable {
        /// The agent's series name (`Reading.name`).
        public var series: String
        public var family: Family
        /// What a node_exporter or dcgm-exporter user knows it as (for the README).
        public var peer: String

        init(_ series: String, _ family: Family, peer: String = "") {
            self.series = series
            self.family = family
            self.peer = peer
        }
    }

    /// In page order.
    public static let entries: [Entry] = [
        // CPU
        .init("system.cpu.time", Family("system_cpu_time_seconds", .counter, unit: "seconds", help: "CPU time by CPU and mode, since boot"), peer: "node_cpu_seconds_total"),
        .init("system.cpu.utilization", Family("system_cpu_utilization_ratio", .gauge, unit: "ratio", help: "Share of the last interval each mode held, per CPU and (without cpu_logical_number) for all CPUs"), peer: "rate(node_cpu_seconds_total)"),
        .init("system.cpu.context_switches", Family("system_cpu_context_switches", .counter, help: "Context switches since boot"), peer: "node_context_switches_total"),
        .init("system.cpu.load_average.1m", Family("system_cpu_load_average_1m", .gauge, help: "Load average over 1 minute"), peer: "node_load1"),
        .init("system.cpu.load_average.5m", Family("system_cpu_load_average_5m", .gauge, help: "Load average over 5 minutes"), peer: "node_load5"),
        .init("system.cpu.load_average.15m", Family("system_cpu_load_average_15m", .gauge, help: "Load average over 15 minutes"), peer: "node_load15"),
        .init("system.process.count", Family("system_processes", .gauge, help: "Processes by state: running (runnable), blocked (on I/O)"), peer: "node_procs_running, node_procs_blocked"),
        .init("system.process.created", Family("system_forks", .counter, help: "Processes created (forks) since boot"), peer: "node_forks_total"),
        .init("system.file_handles.usage", Family("system_file_handles", .gauge, help: "File handles allocated, machine-wide"), peer: "node_filefd_allocated"),
        .init("system.file_handles.limit", Family("system_file_handles_limit", .gauge, help: "The machine's file handle limit (fs.file-max)"), peer: "node_filefd_maximum"),
        // Memory
        .init("system.memory.limit", Family("system_memory_limit_bytes", .gauge, unit: "bytes", help: "Memory installed (MemTotal)"), peer: "node_memory_MemTotal_bytes"),
        .init("system.memory.usage", Family("system_memory_usage_bytes", .gauge, unit: "bytes", help: "Memory by state, summing to the limit: used, free, buffers, cached (page cache and reclaimable slab)"), peer: "node_memory_MemFree_bytes, node_memory_Buffers_bytes, node_memory_Cached_bytes + node_memory_SReclaimable_bytes"),
        .init("system.memory.linux.available", Family("system_memory_linux_available_bytes", .gauge, unit: "bytes", help: "Memory available without swapping (MemAvailable)"), peer: "node_memory_MemAvailable_bytes"),
        .init("system.memory.linux.shared", Family("system_memory_linux_shared_bytes", .gauge, unit: "bytes", help: "Shared memory and tmpfs (Shmem), part of cached"), peer: "node_memory_Shmem_bytes"),
        .init("system.memory.linux.slab.usage", Family("system_memory_linux_slab_usage_bytes", .gauge, unit: "bytes", help: "Kernel slab memory by state (reclaimable, unreclaimable)"), peer: "node_memory_SReclaimable_bytes, node_memory_SUnreclaim_bytes"),
        .init("system.memory.linux.dirty", Family("system_memory_linux_dirty_bytes", .gauge, unit: "bytes", help: "Memory waiting to be written back to disk (Dirty)"), peer: "node_memory_Dirty_bytes"),
        .init("system.memory.linux.committed", Family("system_memory_linux_committed_bytes", .gauge, unit: "bytes", help: "Memory the processes have been promised (Committed_AS)"), peer: "node_memory_Committed_AS_bytes"),
        .init("system.memory.linux.hugepages.limit", Family("system_memory_linux_hugepages_limit", .gauge, help: "Huge pages set aside (only where some are)"), peer: "node_memory_HugePages_Total"),
        .init("system.memory.linux.hugepages.usage", Family("system_memory_linux_hugepages_usage", .gauge, help: "Huge pages by state (used, free)"), peer: "node_memory_HugePages_Free"),
        .init("system.memory.linux.hugepages.reserved", Family("system_memory_linux_hugepages_reserved", .gauge, help: "Huge pages promised but not yet used"), peer: "node_memory_HugePages_Rsvd"),
        .init("system.memory.linux.hugepages.surplus", Family("system_memory_linux_hugepages_surplus", .gauge, help: "Huge pages beyond those set aside"), peer: "node_memory_HugePages_Surp"),
        .init("system.memory.linux.hugepages.page_size", Family("system_memory_linux_hugepages_page_size_bytes", .gauge, unit: "bytes", help: "Size of a huge page"), peer: "node_memory_Hugepagesize_bytes"),
        .init("system.paging.limit", Family("system_paging_limit_bytes", .gauge, unit: "bytes", help: "Swap space"), peer: "node_memory_SwapTotal_bytes"),
        .init("system.paging.usage", Family("system_paging_usage_bytes", .gauge, unit: "bytes", help: "Swap space by state (used, free)"), peer: "node_memory_SwapFree_bytes"),
        .init("system.paging.faults", Family("system_paging_faults", .counter, help: "Major page faults (pages read back from disk) since boot"), peer: "node_vmstat_pgmajfault"),
        .init("system.paging.operations", Family("system_paging_operations", .counter, help: "Pages swapped in and out since boot"), peer: "node_vmstat_pswpin, node_vmstat_pswpout"),
        .init("system.memory.oom_kills", Family("system_memory_oom_kills", .counter, help: "Processes the OOM killer killed since boot"), peer: "node_vmstat_oom_kill"),
        // Pressure
        .init("system.pressure.avg10", Family("system_pressure_avg10_ratio", .gauge, unit: "ratio", help: "Share of the last 10 s tasks stalled on the resource (some: one task; full: all)"), peer: "(none: /proc/pressure avg10)"),
        .init("system.pressure.stall", Family("system_pressure_stall_seconds", .counter, unit: "seconds", help: "Time tasks stalled on the resource since boot"), peer: "node_pressure_cpu_waiting_seconds_total, node_pressure_memory_stalled_seconds_total, …"),
        // The agent's (or a trainer's) cgroup
        .init("container.memory.usage", Family("container_memory_usage_bytes", .gauge, unit: "bytes", help: "Memory charged to the cgroup"), peer: "container_memory_usage_bytes (cAdvisor)"),
        .init("container.memory.limit", Family("container_memory_limit_bytes", .gauge, unit: "bytes", help: "The cgroup's memory limit"), peer: "container_spec_memory_limit_bytes (cAdvisor)"),
        .init("container.memory.oom_kills", Family("container_memory_oom_kills", .counter, help: "Processes of the cgroup the OOM killer killed"), peer: "container_oom_events_total (cAdvisor)"),
        .init("container.cpu.limit", Family("container_cpu_limit", .gauge, help: "The cgroup's CPU quota, in CPUs"), peer: "container_spec_cpu_quota / container_spec_cpu_period (cAdvisor)"),
        .init("container.cpu.time", Family("container_cpu_time_seconds", .counter, unit: "seconds", help: "CPU time the cgroup used"), peer: "container_cpu_usage_seconds_total (cAdvisor)"),
        .init("container.cpu.throttled", Family("container_cpu_throttled_seconds", .counter, unit: "seconds", help: "Time the cgroup was throttled by its CPU quota"), peer: "container_cpu_cfs_throttled_seconds_total (cAdvisor)"),
        // Disks
        .init("system.disk.io", Family("system_disk_io_bytes", .counter, unit: "bytes", help: "Bytes read and written by direction"), peer: "node_disk_read_bytes_total, node_disk_written_bytes_total"),
        .init("system.disk.operations", Family("system_disk_operations", .counter, help: "Reads and writes completed by direction"), peer: "node_disk_reads_completed_total, node_disk_writes_completed_total"),
        .init("system.disk.operation_time", Family("system_disk_operation_time_seconds", .counter, unit: "seconds", help: "Time spent on reads and writes by direction"), peer: "node_disk_read_time_seconds_total, node_disk_write_time_seconds_total"),
        .init("system.disk.merged", Family("system_disk_merged", .counter, help: "Reads and writes merged before they reached the disk, by direction"), peer: "node_disk_reads_merged_total, node_disk_writes_merged_total"),
        .init("system.disk.discards", Family("system_disk_discards", .counter, help: "Discards (TRIM) completed"), peer: "node_disk_discards_completed_total"),
        .init("system.disk.pending_operations", Family("system_disk_pending_operations", .gauge, help: "I/Os in flight now"), peer: "node_disk_io_now"),
        .init("system.disk.io_time", Family("system_disk_io_time_seconds", .counter, unit: "seconds", help: "Time the disk was busy"), peer: "node_disk_io_time_seconds_total"),
        .init("system.disk.weighted_io_time", Family("system_disk_weighted_io_time_seconds", .counter, unit: "seconds", help: "Busy time weighted by the requests in flight (its rate is the average queue length)"), peer: "node_disk_io_time_weighted_seconds_total"),
        .init("system.disk.info", Family("system_disk", .info, help: "Each whole disk; the labels are its model, serial and given name"), peer: "node_disk_info"),
        // Filesystems
        .init("system.filesystem.limit", Family("system_filesystem_limit_bytes", .gauge, unit: "bytes", help: "Size of the filesystem"), peer: "node_filesystem_size_bytes"),
        .init("system.filesystem.usage", Family("system_filesystem_usage_bytes", .gauge, unit: "bytes", help: "Bytes by state: used, free (available to non-root) and reserved (for root), summing to the limit"), peer: "node_filesystem_avail_bytes, node_filesystem_free_bytes − node_filesystem_avail_bytes"),
        .init("system.filesystem.inodes.limit", Family("system_filesystem_inodes_limit", .gauge, help: "Inodes of the filesystem"), peer: "node_filesystem_files"),
        .init("system.filesystem.inodes.usage", Family("system_filesystem_inodes_usage", .gauge, help: "Inodes used"), peer: "node_filesystem_files − node_filesystem_files_free"),
        // Network (and InfiniBand ports, with `port`)
        .init("system.network.io", Family("system_network_io_bytes", .counter, unit: "bytes", help: "Bytes received and transmitted by interface (InfiniBand: by port)"), peer: "node_network_receive_bytes_total, node_network_transmit_bytes_total, node_infiniband_port_data_received_bytes_total"),
        .init("system.network.packet.count", Family("system_network_packets", .counter, help: "Packets received and transmitted"), peer: "node_network_receive_packets_total"),
        .init("system.network.errors", Family("system_network_errors", .counter, help: "Receive and transmit errors"), peer: "node_network_receive_errs_total"),
        .init("system.network.packet.dropped", Family("system_network_dropped", .counter, help: "Packets dropped"), peer: "node_network_receive_drop_total"),
        .init("system.network.interface.up", Family("system_network_interface_up", .gauge, help: "1 while the interface's link is up"), peer: "node_network_up"),
        .init("system.network.interface.speed", Family("system_network_interface_speed_bytes_per_second", .gauge, unit: "bytes_per_second", help: "The link's speed"), peer: "node_network_speed_bytes"),
        .init("system.network.interface.mtu", Family("system_network_interface_mtu_bytes", .gauge, unit: "bytes", help: "The interface's MTU"), peer: "node_network_mtu_bytes"),
        .init("system.network.tcp.retransmits", Family("system_network_tcp_retransmits", .counter, help: "TCP segments retransmitted since boot"), peer: "node_netstat_Tcp_RetransSegs"),
        .init("system.network.connection.count", Family("system_network_connections", .gauge, help: "TCP connections established now (network_connection_state, network_transport)"), peer: "node_netstat_Tcp_CurrEstab"),
        .init("system.network.sockets", Family("system_network_sockets", .gauge, help: "Sockets in use: all (no network_transport), and by transport (tcp, udp)"), peer: "node_sockstat_sockets_used, node_sockstat_TCP_inuse, node_sockstat_UDP_inuse"),
        // GPUs
        .init("hw.gpu.utilization", Family("hw_gpu_utilization_ratio", .gauge, unit: "ratio", help: "Share of the last sample period a kernel ran on the GPU (with hw_gpu_task: the video encoder or decoder was busy)"), peer: "DCGM_FI_DEV_GPU_UTIL (percent)"),
        .init("hw.gpu.memory.activity", Family("hw_gpu_memory_activity_ratio", .gauge, unit: "ratio", help: "Share of the last sample period device memory was read or written"), peer: "DCGM_FI_DEV_MEM_COPY_UTIL (percent)"),
        .init("hw.gpu.memory.usage", Family("hw_gpu_memory_usage_bytes", .gauge, unit: "bytes", help: "Device memory in use"), peer: "DCGM_FI_DEV_FB_USED (MiB)"),
        .init("hw.gpu.memory.limit", Family("hw_gpu_memory_limit_bytes", .gauge, unit: "bytes", help: "Device memory installed"), peer: "DCGM_FI_DEV_FB_TOTAL (MiB)"),
        .init("hw.gpu.memory.reserved", Family("hw_gpu_memory_reserved_bytes", .gauge, unit: "bytes", help: "Device memory the driver reserves"), peer: "DCGM_FI_DEV_FB_RESERVED (MiB)"),
        .init("hw.temperature", Family("hw_temperature_celsius", .gauge, unit: "celsius", help: "GPU temperature (AMD: by hw_sensor_location, edge, junction, mem)"), peer: "DCGM_FI_DEV_GPU_TEMP"),
        .init("hw.gpu.memory.gtt.usage", Family("hw_gpu_memory_gtt_usage_bytes", .gauge, unit: "bytes", help: "System memory mapped for the GPU in use (AMD GTT)"), peer: "(amd_smi: gtt used)"),
        .init("hw.gpu.memory.gtt.limit", Family("hw_gpu_memory_gtt_limit_bytes", .gauge, unit: "bytes", help: "System memory the GPU may map (AMD GTT)"), peer: "(amd_smi: gtt total)"),
        .init("hw.power", Family("hw_power_watts", .gauge, unit: "watts", help: "Power draw"), peer: "DCGM_FI_DEV_POWER_USAGE"),
        .init("hw.power.limit", Family("hw_power_limit_watts", .gauge, unit: "watts", help: "Enforced power limit"), peer: "DCGM_FI_DEV_ENFORCED_POWER_LIMIT"),
        .init("hw.energy", Family("hw_energy_joules", .counter, unit: "joules", help: "Energy used since the driver loaded"), peer: "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ)"),
        .init("hw.gpu.clock", Family("hw_gpu_clock_hertz", .gauge, unit: "hertz", help: "Clock frequency by clock (graphics, sm, memory)"), peer: "DCGM_FI_DEV_SM_CLOCK, DCGM_FI_DEV_MEM_CLOCK (MHz)"),
        .init("hw.gpu.io.rate", Family("hw_gpu_io_bytes_per_second", .gauge, unit: "bytes_per_second", help: "PCIe throughput by direction, over the last tick from GPM (before Hopper, the driver's 20 ms sample)"), peer: "DCGM_FI_PROF_PCIE_TX_BYTES, DCGM_FI_PROF_PCIE_RX_BYTES"),
        .init("hw.fan.speed_ratio", Family("hw_fan_speed_ratio", .gauge, unit: "ratio", help: "Fan speed as a share of its maximum"), peer: "DCGM_FI_DEV_FAN_SPEED (percent)"),
        .init("hw.gpu.clocks_event", Family("hw_gpu_clocks_event", .gauge, help: "1 while the reason holds the clocks down, else 0"), peer: "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS (a bit mask)"),
        .init("hw.errors", Family("hw_errors", .counter, help: "Volatile ECC errors by type (corrected, uncorrected)"), peer: "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL, DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"),
        .init("hw.gpu.sm.activity", Family("hw_gpu_sm_activity_ratio", .gauge, unit: "ratio", help: "Share of the SMs busy (GPM)"), peer: "DCGM_FI_PROF_SM_ACTIVE"),
        .init("hw.gpu.sm.occupancy", Family("hw_gpu_sm_occupancy_ratio", .gauge, unit: "ratio", help: "Warps resident of the most the SMs could hold (GPM)"), peer: "DCGM_FI_PROF_SM_OCCUPANCY"),
        .init("hw.gpu.tensor.activity", Family("hw_gpu_tensor_activity_ratio", .gauge, unit: "ratio", help: "Share of the time the SMs ran tensor instructions (GPM)"), peer: "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"),
        .init("hw.gpu.dram.activity", Family("hw_gpu_dram_activity_ratio", .gauge, unit: "ratio", help: "Device memory bandwidth used of its peak (GPM)"), peer: "DCGM_FI_PROF_DRAM_ACTIVE"),
        .init("hw.gpu.pipe.activity", Family("hw_gpu_pipe_activity_ratio", .gauge, unit: "ratio", help: "Share of the time the SMs ran fp64, fp32, fp16 math (GPM)"), peer: "DCGM_FI_PROF_PIPE_FP64_ACTIVE, DCGM_FI_PROF_PIPE_FP32_ACTIVE, DCGM_FI_PROF_PIPE_FP16_ACTIVE"),
        .init("hw.gpu.pcie.replays", Family("hw_gpu_pcie_replays", .counter, help: "PCIe transfers replayed"), peer: "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"),
        .init("hw.gpu.memory.remapped_rows", Family("hw_gpu_memory_remapped_rows", .gauge, help: "Memory rows remapped by error type (corrected, uncorrected)"), peer: "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS, DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"),
        .init("hw.gpu.memory.remap_pending", Family("hw_gpu_memory_remap_pending", .gauge, help: "1 while a row remap waits for a GPU reset"), peer: "DCGM_FI_DEV_ROW_REMAP_PENDING"),
        .init("hw.gpu.memory.remap_failed", Family("hw_gpu_memory_remap_failed", .gauge, help: "1 once a row remap failed"), peer: "DCGM_FI_DEV_ROW_REMAP_FAILURE"),
        .init("hw.gpu.memory.retired_pages", Family("hw_gpu_memory_retired_pages", .gauge, help: "Memory pages retired by cause (single_bit_ecc, double_bit_ecc)"), peer: "DCGM_FI_DEV_RETIRED_SBE, DCGM_FI_DEV_RETIRED_DBE"),
        .init("hw.gpu.violation_time", Family("hw_gpu_violation_time_seconds", .counter, unit: "seconds", help: "Time the clocks were held down by power or thermal limits"), peer: "DCGM_FI_DEV_POWER_VIOLATION, DCGM_FI_DEV_THERMAL_VIOLATION (µs)"),
        .init("hw.gpu.nvlink.io", Family("hw_gpu_nvlink_io_bytes", .counter, unit: "bytes", help: "Data sent and received over each NVLink"), peer: "DCGM_FI_PROF_NVLINK_TX_BYTES, DCGM_FI_PROF_NVLINK_RX_BYTES (per GPU, a rate)"),
        .init("hw.gpu.nvlink.errors", Family("hw_gpu_nvlink_errors", .counter, help: "NVLink errors by link and type (replay, recovery, crc_flit, crc_data)"), peer: "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, …"),
        .init("hw.gpu.mig.mode", Family("hw_gpu_mig_mode", .gauge, help: "1 when the GPU is in MIG mode"), peer: "DCGM_FI_DEV_MIG_MODE"),
        .init("hw.gpu.mig.memory.usage", Family("hw_gpu_mig_memory_usage_bytes", .gauge, unit: "bytes", help: "Device memory in use by MIG instance"), peer: "DCGM_FI_DEV_FB_USED (per MIG instance)"),
        .init("hw.gpu.mig.memory.limit", Family("hw_gpu_mig_memory_limit_bytes", .gauge, unit: "bytes", help: "Device memory of the MIG instance"), peer: "DCGM_FI_DEV_FB_TOTAL (per MIG instance)"),
        .init("hw.gpu.mig.memory.reserved", Family("hw_gpu_mig_memory_reserved_bytes", .gauge, unit: "bytes", help: "Device memory the driver reserves in the MIG instance"), peer: "DCGM_FI_DEV_FB_RESERVED (per MIG instance)"),
        // Attached trainers: each process of the tree (the 64 busiest, the rest as pid=other)
        .init("process.cpu.time", Family("process_cpu_time_seconds", .counter, unit: "seconds", help: "CPU time of the trainer's process (user and system)"), peer: "namedprocess_namegroup_cpu_seconds_total (process-exporter)"),
        .init("process.memory.usage", Family("process_memory_usage_bytes", .gauge, unit: "bytes", help: "Resident memory of the trainer's process"), peer: "namedprocess_namegroup_memory_bytes{memtype=resident}"),
        .init("process.thread.count", Family("process_threads", .gauge, help: "Threads of the trainer's process"), peer: "namedprocess_namegroup_num_threads"),
        .init("process.unix.file_descriptor.count", Family("process_open_file_descriptors", .gauge, help: "Open file descriptors of the trainer's process"), peer: "namedprocess_namegroup_open_filedesc"),
        .init("process.disk.io", Family("process_disk_io_bytes", .counter, unit: "bytes", help: "Bytes the trainer's process read and wrote to storage"), peer: "namedprocess_namegroup_read_bytes_total"),
        .init("hw.gpu.process.memory.usage", Family("hw_gpu_process_memory_usage_bytes", .gauge, unit: "bytes", help: "Device memory the trainer's process holds on the GPU"), peer: "(dcgm-exporter: none; nvidia-smi's process list)"),
    ]

    /// The agent's rates, and the counters exposed in their stead (their rate is what
    /// Prometheus' `rate()` gives): each `….rate` stands beside its counter, and a few rates have
    /// names of their own; the tree's process count, which the page's per-process series give.
    public static let notExposed: [String: String] = [
        "container.cpu.usage": "container.cpu.time",
        "system.disk.busy": "system.disk.io_time",
        "system.disk.queue_length": "system.disk.weighted_io_time",
        "process.cpu.utilization": "process.cpu.time",
        "process.count": "process.cpu.time",
    ]

    /// The exposed counter in a stored rate's stead, or nil for a series that is exposed itself.
    public static func counter(standingFor rate: String) -> String? {
        if let counter = notExposed[rate] { return counter }
        guard rate.hasSuffix(".rate"), rate != "hw.gpu.io.rate" else { return nil }
        return String(rate.dropLast(".rate".count))
    }

    /// A trainer's tree totals as the store keeps them (`pid`: the root), which remote write sends
    /// with `--remote-write-processes`: names of their own, since the page's `process_…` families
    /// are each process alone.
    public static let treeEntries: [Entry] = [
        .init("process.cpu.time", Family("process_tree_cpu_time_seconds", .counter, unit: "seconds", help: "CPU time of the trainer's whole tree (remote write only)")),
        .init("process.memory.usage", Family("process_tree_memory_usage_bytes", .gauge, unit: "bytes", help: "Resident memory of the trainer's whole tree (remote write only)")),
        .init("process.thread.count", Family("process_tree_threads", .gauge, help: "Threads of the trainer's whole tree (remote write only)")),
        .init("process.unix.file_descriptor.count", Family("process_tree_open_file_descriptors", .gauge, help: "Open file descriptors of the trainer's whole tree (remote write only)")),
        .init("process.count", Family("process_tree_processes", .gauge, help: "Processes in the trainer's tree (remote write only)")),
        .init("process.disk.io", Family("process_tree_disk_io_bytes", .counter, unit: "bytes", help: "Bytes the trainer's whole tree read and wrote to storage (remote write only)")),
    ]

    /// Each tree series name's entry.
    public static let treeBySeries: [String: Entry] = Dictionary(uniqueKeysWithValues: treeEntries.map { ($0.series, $0) })

    /// Each series name's entry.
    public static let bySeries: [String: Entry] = Dictionary(uniqueKeysWithValues: entries.map { ($0.series, $0) })

    /// Each series name's place in `entries`.
    static let indexBySeries: [String: Int] = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($0.element.series, $0.offset) })
}

extension ExpositionNames {
    /// Between these lines of README.md stand the tables below.
    public static let readmeStart = "<!-- exposition: written by Scripts/generate-settings-docs.sh from Sources/BoxcarExposition -->"
    public static let readmeEnd = "<!-- end of exposition -->"

    /// The README's tables: every family the machine's page may hold, with what a node_exporter or
    /// dcgm-exporter user knows it as, then the agent's and the collector's own.
    public static func markdownTables() -> String {
        func name(_ family: Family) -> String {
            switch family.type {
            case .counter: "`\(family.name)_total`"
            case .info: "`\(family.name)_info`"
            case .gauge, .histogram: "`\(family.name)`"
            }
        }
        var lines = [
            "| exposed as | type | unit | the agent's series | node_exporter, dcgm-exporter |",
            "| --- | --- | --- | --- | --- |",
        ]
        for entry in entries + treeEntries {
            lines.append("| \(name(entry.family)) | \(entry.family.type.rawValue) | \(entry.family.unit ?? "") | `\(entry.series)` | \(entry.peer) |")
        }
        lines += ["", "| exposed as | type | meaning |", "| --- | --- | --- |"]
        for family in AgentHealth.families {
            lines.append("| \(name(family)) | \(family.type.rawValue) | \(family.help) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
