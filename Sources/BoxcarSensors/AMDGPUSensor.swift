/// AMD GPUs through the amdgpu driver's sysfs files (`/sys/class/drm/card*/device`, vendor
/// 0x1002): busy fraction, VRAM and GTT (system memory the GPU maps) used and total, and from its
/// hwmon: average power, each temperature sensor (edge, junction, memory) and the graphics and
/// memory clocks. A file the card lacks drops that metric for that card.
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
            if let used = files.number(device + "/mem_info_gtt_used") {
                out.append(Reading("hw.gpu.memory.gtt.usage", labels, used))
            }
            if let total = files.number(device + "/mem_info_gtt_total") {
                out.append(Reading("hw.gpu.memory.gtt.limit", labels, total))
            }
            for (base, inputs) in hwmons(card: card, device: device) {
                if let microwatts = files.number(base + "/power1_average") {
                    out.append(Reading("hw.power", labels + [.init("hw.type", "gpu")], microwatts / 1_000_000))
                }
                for input in inputs {
                    guard let value = files.number(input.path) else { continue }
                    out.append(Reading(input.name, labels + [input.label], value / input.divisor))
                }
            }
        }
        return out
    }

    /// amdgpu's clock labels as NVML names the same clocks.
    static let clocks = ["sclk": "graphics", "mclk": "memory"]

    /// A hwmon temperature or clock: its file, its series, the label that tells it from the card's
    /// others, and what the file's value is divided by for the series' unit (m°C → °C).
    struct Input {
        var path: String
        var name: String
        var label: Reading.Label
        var divisor: Double
    }

    /// Each card's hwmon directories and their temperature and clock inputs, listed (and their
    /// labels read) once.
    var hwmonInputs: [String: [(base: String, inputs: [Input])]] = [:]

    func hwmons(card: String, device: String) -> [(base: String, inputs: [Input])] {
        if let known = hwmonInputs[card] { return known }
        let found = directoryEntries(device + "/hwmon").sorted().map { hwmon in
            let base = device + "/hwmon/" + hwmon
            let inputs = directoryEntries(base).filter { $0.hasSuffix("_input") }.sorted().compactMap { input -> Input? in
                let sensor = input.dropLast("_input".count)  // "temp2", "freq1"
                let label = files.text(base + "/\(sensor)_label")
                if sensor.hasPrefix("temp") {
                    // The kernel's labels: edge, junction (the hottest spot), mem (HBM).
                    let location = label ?? (sensor == "temp1" ? "edge" : String(sensor))
                    return Input(path: base + "/" + input, name: "hw.temperature", label: .init("hw.sensor_location", location), divisor: 1000)
                }
                guard sensor.hasPrefix("freq"), let clock = label.flatMap({ Self.clocks[$0] }) else { return nil }
                return Input(path: base + "/" + input, name: "hw.gpu.clock", label: .init("clock", clock), divisor: 1)
            }
            return (base, inputs)
        }
        hwmonInputs[card] = found
        return found
    }

    /// Each card as `boxcar doctor` names it: its product name where the driver gives one, and
    /// its PCI device id.
    public func cardNames() -> [String] {
        cards().map { card in
            let device = sysRoot + "/class/drm/\(card)/device"
            let id = files.text(device + "/device") ?? "unknown device"
            return files.text(device + "/product_name").map { "\(card): \($0) (\(id))" } ?? "\(card): \(id)"
        }
    }
}
