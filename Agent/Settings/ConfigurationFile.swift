import Yams

/// The configuration file's shape, checked before any value in it is used: swift-configuration
/// reads the keys it is asked for and passes over the rest, so a misspelt key or a list where one
/// value belongs would otherwise leave a setting at its default without a word.
enum ConfigurationFile {
    /// Throws for a file that is not a mapping, a key no setting has (or one only a flag may set),
    /// and a value that is not one plain value.
    static func check(_ text: String, path: String, settings: [Setting]) throws {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw CLIError("\(path) is not valid YAML: \(error)") }
        guard let root else { return }  // empty, or comments only
        guard case .mapping(let mapping) = root else {
            throw CLIError("\(path) must be a mapping of settings (`sample-interval: 1`, one a line)")
        }
        let known = settings.filter(\.inFile).map(\.name)
        for (key, value) in mapping {
            guard case .scalar(let name) = key else { throw CLIError("\(path): a key must be a setting's name") }
            guard known.contains(name.string) else {
                let flagOnly = settings.contains { $0.name == name.string }
                throw CLIError(flagOnly
                    ? "\(path): `\(name.string)` is set by its flag or environment variable only, not in the file"
                    : "\(path): unknown key `\(name.string)`; `boxcar agent --help` lists the settings")
            }
            guard case .scalar(let scalar) = value else {
                throw CLIError("\(path): `\(name.string)` takes one value (a list is written comma-separated), not a list or mapping")
            }
            if scalar.string.isEmpty && scalar.style == .plain {
                throw CLIError("\(path): `\(name.string)` has no value; give one, or remove the line")
            }
        }
    }
}
