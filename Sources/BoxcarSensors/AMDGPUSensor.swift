/// AMD GPUs through the amdgpu driver's sysfs files (`/sys/class/drm/card*/device`, vendor
/// 0x1002): busy fraction, VRAM used and total, and from its hwmon: average power and edge
/// temperature. A file the card lacks drops that metric for that card.
public final class AMDGPUSensor: Sensor {
    public let name = "amdgpu"
    let files = OpenFiles<String>(wholeInOneRead: true)
    let sysRoot: String

    public init(sysRoot: String = "/sys") {
        self.sysRoot = sysRoot
    }

    /// The cards: "card0", "card1", … (connectors such as "card0-DP-1" are not cards).
    func cards() -> [String] {
        let drm = sysRoot + "/class/drm"
        return directoryEntries(drm).filter { entry in
            entry.hasPrefix("card") && entry.dropFirst(4).allSatisfy(\.isNumber)
                && files.text(drm + "/\(entry)/device/vendor") == "0x1002"
        }.sorted { Int($0.dropFirst(4))! < Int($1.dropFirst(4))! }
    }

    public func sample(elapsed: Duration?) throws -> [Reading] {
        var out: [Reading] = []
        for card in cards() {
            let device = sysRoot + "/class/drm/\(card)/device"
            let labels = [Reading.Label("hw.vendor", "amd"), .init("index", String(card.dropFirst(4)))]
            if let busy = files.number(device + "/gpu_busy_percent") {
                out.append(Reading("hw.gpu.utilization", labels, busy / 100))
            }
            if let used = files.number(device + "/mem_info_vram_used") {
                out.append(Reading("hw.gpu.memory.usage", labels, used))
            }
            if let total = files.number(device + "/mem_info_vram_total") {
                out.append(Reading("hw.gpu.memory.limit", labels, total))
            }
            for hwmon in directoryEntries(device + "/hwmon").sorted() {
                let base = device + "/hwmon/" + hwmon
                if let microwatts = files.number(base + "/power1_average") {
                    out.append(Reading("hw.power", labels + [.init("hw.type", "gpu")], microwatts / 1_000_000))
                }
                if let millidegrees = files.number(base + "/temp1_input") {
                    out.append(Reading("hw.temperature", labels, millidegrees / 1000))
                }
            }
        }
        return out
    }
}
