#if canImport(Glibc)
import Glibc
#endif

/// One setting of `boxcar agent`, declared once: its name is the flag (`--NAME`), the key in the
/// configuration file and, upper-cased with `BOXCAR_` before it, the environment variable. The
/// same declaration gives its default, its help, the README's table and `Config/boxcar.yaml`
/// (SettingsDocs), and how its text becomes a value (`apply`, which throws a message naming it).
struct Setting: Sendable {
    enum Kind: Sendable {
        /// `--name VALUE` or `--name=VALUE`; the placeholder names the value in the docs.
        case value(placeholder: String)
        /// `--name` alone, meaning true; `true` or `false` in the environment and the file.
        case flag
    }

    let name: String
    let kind: Kind
    /// The default as a person reads it (the README, `--help`).
    let defaultText: String
    /// The default the agent applies, as text through `apply`; nil where absent means none.
    let defaultValue: @Sendable (AgentSettings) -> String?
    /// One line: the README's table and `--help`.
    let help: String
    /// What the configuration file says of it, above its line.
    let note: String
    /// The value on the file's commented-out line.
    let example: String
    /// Whether the file may set it (the file itself is chosen before it is read).
    let inFile: Bool
    let apply: @Sendable (String, inout AgentSettings) throws -> Void

    init(
        _ name: String, _ kind: Kind, default defaultText: String, value defaultValue: String?,
        help: String, note: String, example: String, inFile: Bool = true,
        apply: @escaping @Sendable (String, inout AgentSettings) throws -> Void
    ) {
        self.init(
            name, kind, default: defaultText, computed: { _ in defaultValue }, help: help, note: note,
            example: example, inFile: inFile, apply: apply)
    }

    init(
        _ name: String, _ kind: Kind, default defaultText: String,
        computed defaultValue: @escaping @Sendable (AgentSettings) -> String?,
        help: String, note: String, example: String, inFile: Bool = true,
        apply: @escaping @Sendable (String, inout AgentSettings) throws -> Void
    ) {
        self.name = name
        self.kind = kind
        self.defaultText = defaultText
        self.defaultValue = defaultValue
        self.help = help
        self.note = note
        self.example = example
        self.inFile = inFile
        self.apply = apply
    }

    var environmentName: String {
        "BOXCAR_" + name.uppercased().map { $0 == "-" ? "_" : $0 }
    }

    /// `--name PLACEHOLDER`, or `--name` for a flag.
    var usage: String {
        switch kind {
        case .value(let placeholder): return "--\(name) \(placeholder)"
        case .flag: return "--\(name)"
        }
    }
}

// MARK: Values from text, with messages that name the setting

extension Setting {
    static func bool(_ text: String, _ setting: String) throws -> Bool {
        guard let value = Bool(text) else { throw CLIError("\(setting) must be true or false, not \(text)") }
        return value
    }

    /// "30d", "12h", "90m", "45s" or a number of seconds; more than zero.
    static func duration(_ text: String, _ setting: String) throws -> Duration {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var number = Substring(text)
        var unit = 1.0
        if let last = text.last, let factor = units[last] {
            number = number.dropLast()
            unit = factor
        }
        // At most about 285 years: beyond, the nanoseconds retention counts back overflow.
        guard let value = Double(number), value.isFinite, value > 0, value * unit < 9e9 else {
            throw CLIError("\(setting) must be a duration such as 30d, 12h, 90m, 45s or a number of seconds, not \(text)")
        }
        return .milliseconds(Int64(value * unit * 1000))
    }

    /// Bytes, or with a K, M or G suffix (powers of 1024); more than zero.
    static func bytes(_ text: String, _ setting: String) throws -> Int64 {
        let units: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        var number = Substring(text)
        var unit = 1.0
        if let last = text.uppercased().last, let factor = units[last] {
            number = number.dropLast()
            unit = factor
        }
        guard let value = Double(number), value.isFinite, value >= 1, value * unit < 9e18 else {
            throw CLIError("\(setting) must be a number of bytes, with K, M or G if you like, not \(text)")
        }
        return Int64(value * unit)
    }

    /// A group by name or number.
    static func groupID(_ group: String) throws -> gid_t {
        if let number = gid_t(group) { return number }
        guard let entry = getgrnam(group) else { throw CLIError("no group named \(group)") }
        return entry.pointee.gr_gid
    }
}
