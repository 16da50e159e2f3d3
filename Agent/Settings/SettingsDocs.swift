import ArgumentParser
import BoxcarExposition
import BoxcarSensors

/// The documents written from the settings' declarations: the README's table and the
/// configuration file. `Scripts/generate-settings-docs.sh` writes them into place; a test fails
/// when either differs from what the declarations say.
enum SettingsDocs {
    /// Between these lines of README.md stands the table.
    static let readmeStart = "<!-- settings: written by Scripts/generate-settings-docs.sh from Agent/Settings/AgentSettings.swift -->"
    static let readmeEnd = "<!-- end of settings -->"

    static func markdownTable() -> String {
        var lines = [
            "| flag | environment | default | meaning |",
            "| --- | --- | --- | --- |",
        ]
        for setting in AgentSettings.all {
            // A bar inside a cell ends it unless escaped, code spans too.
            let usage = setting.usage.split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|")
            lines.append("| `\(usage)` | `\(setting.environmentName)` | \(setting.defaultText) | \(setting.help) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `Config/boxcar.yaml`: every key the file may hold, commented out at an example value, with
    /// its meaning and default.
    static func configFile() -> String {
        var out = """
            # Boxcar agent configuration: every key, its default and its meaning.
            #
            # Pass this file with `boxcar agent --config FILE` (or BOXCAR_CONFIG=FILE). Each key may also be
            # set by a flag (--db, --socket, …) or an environment variable (BOXCAR_DB, BOXCAR_SOCKET, …,
            # a dash becoming an underscore: BOXCAR_LOG_LEVEL). Precedence: flag > environment > this file >
            # the default. Uncomment a line to change it. (Written by Scripts/generate-settings-docs.sh
            # from Agent/Settings/AgentSettings.swift.)

            """
        for setting in AgentSettings.all where setting.name != "config" {
            out += "\n"
            for line in setting.note.split(separator: "\n", omittingEmptySubsequences: false) {
                out += "# \(line)\n"
            }
            out += "# Default: \(setting.defaultText.filter { $0 != "`" })\n"
            out += "# \(setting.name): \(setting.example)\n"
        }
        return out
    }
}

/// `boxcar settings markdown|yaml|exposition`: prints a document written from the settings, or the
/// exporter's tables of names (hidden; for Scripts/generate-settings-docs.sh).
struct SettingsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settings", abstract: "Print the settings' table (markdown) or configuration file (yaml).",
        shouldDisplay: false)

    @Argument(help: "markdown, yaml, exposition or metrics")
    var format: String

    func run() throws {
        switch format {
        case "markdown": print(SettingsDocs.markdownTable(), terminator: "")
        case "yaml": print(SettingsDocs.configFile(), terminator: "")
        case "exposition": print(ExpositionNames.markdownTables(), terminator: "")
        case "metrics": print(MachineMetrics.markdownTable(), terminator: "")
        default: throw ValidationError("format must be markdown, yaml, exposition or metrics, not \(format)")
        }
    }
}
