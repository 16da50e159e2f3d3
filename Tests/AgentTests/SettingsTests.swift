@testable import boxcar
import BoxcarTestSupport
import Foundation
import Testing

/// Each setting is declared once; what the README, the configuration file, the flags and the
/// defaults say must all come from that declaration.
@Suite struct SettingsTests {
    @Test func theReadmeTableAndTheConfigurationFileAreWhatTheDeclarationsSay() throws {
        let readme = try String(contentsOfFile: checkoutDirectory + "/README.md", encoding: .utf8)
        let start = try #require(readme.range(of: SettingsDocs.readmeStart + "\n"), "README.md lost its settings section")
        let end = try #require(readme.range(of: SettingsDocs.readmeEnd, range: start.upperBound..<readme.endIndex))
        #expect(String(readme[start.upperBound..<end.lowerBound]) == SettingsDocs.markdownTable(),
                "the README's settings table is out of date: run Scripts/generate-settings-docs.sh")
        let file = try String(contentsOfFile: checkoutDirectory + "/Config/boxcar.yaml", encoding: .utf8)
        #expect(file == SettingsDocs.configFile(), "Config/boxcar.yaml is out of date: run Scripts/generate-settings-docs.sh")
    }

    @Test func remoteWriteTakesSeveralURLsAndHeadersAndKeepsItsTokenOffPlaintext() throws {
        let directory = TemporaryDirectory()
        let token = directory.file("token")
        try "rw\n".write(toFile: token, atomically: true, encoding: .utf8)
        chmod(token, 0o600)
        let flags = try AgentSettings.flags([
            "--remote-write", "http://127.0.0.1:9090/api/v1/write", "--remote-write=https://vm.example.org/api/v1/write",
            "--remote-write", "http://127.0.0.1:9090/api/v1/write",  // twice: once
            "--remote-write-header", "X-Scope-OrgID: team-a", "--remote-write-header", "X-Note: a, b",
            "--remote-write-token-file", token,
        ])
        let settings = try AgentSettings.resolve(flags: flags, environment: [:]) { _ in nil }
        #expect(settings.agent.remoteWrite.urls == ["http://127.0.0.1:9090/api/v1/write", "https://vm.example.org/api/v1/write"])
        #expect(settings.agent.remoteWrite.headers.map { "\($0.name)=\($0.value)" } == ["X-Scope-OrgID=team-a", "X-Note=a, b"])
        #expect(settings.agent.remoteWrite.token == "rw")
        // The token would cross the network in the clear.
        #expect(throws: CLIError.self) {
            try AgentSettings.resolve(
                flags: try AgentSettings.flags(["--remote-write", "http://10.0.0.5:9090/api/v1/write", "--remote-write-token-file", token]),
                environment: [:]) { _ in nil }
        }
        #expect(throws: CLIError.self) {
            try AgentSettings.resolve(flags: try AgentSettings.flags(["--remote-write", "ftp://x"]), environment: [:]) { _ in nil }
        }
        #expect(throws: CLIError.self) {
            try AgentSettings.resolve(flags: try AgentSettings.flags(["--http", "0.0.0.0:9464"]), environment: [:]) { _ in nil }
        }
    }

    @Test func namesAreUniqueAndTheDocumentedDefaultsAreTheAppliedOnes() throws {
        let names = AgentSettings.all.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(AgentSettings.all.first { $0.name == "log-level" }?.environmentName == "BOXCAR_LOG_LEVEL")
        // Defaults that are a value (not a path worked out from the machine) read as written.
        for setting in AgentSettings.all where !["db", "socket", "artifacts"].contains(setting.name) {
            if let value = setting.defaultValue(AgentSettings()) {
                #expect(setting.defaultText == "`\(value)`", "\(setting.name)")
            }
        }
        let defaults = try AgentSettings.resolve(flags: [:], environment: [:]) { _ in nil }
        #expect(defaults.agent.limits.maxUploadBytes == 16 << 30)
        #expect(defaults.agent.ingestMemoryBytes == 128 << 20)
        #expect(defaults.agent.sampleInterval == .seconds(1))
        #expect(defaults.agent.durability == .normal)
        #expect(defaults.agent.listen == nil && defaults.agent.retention == .seconds(30 * 86_400) && defaults.agent.maxDatabaseBytes == nil)
        #expect(try AgentSettings.resolve(flags: ["retention": "none"], environment: [:]) { _ in nil }.agent.retention == nil)
        #expect(defaults.agent.artifactsDirectory == Defaults.artifactsDirectory(forDatabase: defaults.agent.databasePath))
        #expect(defaults.logLevel == .info)
    }

    @Test func flagsBeatTheEnvironmentWhichBeatsTheFileAndEachIsCheckedByItsDeclaration() throws {
        let flags = try AgentSettings.flags(["--db", "/x/a.db", "--allow-remote=false", "--retention=2h", "--max-db-size", "1M"])
        #expect(flags == ["db": "/x/a.db", "allow-remote": "false", "retention": "2h", "max-db-size": "1M"])
        let file = ["log-level": "error", "durability": "full"]
        let settings = try AgentSettings.resolve(
            flags: flags, environment: ["BOXCAR_DB": "/y/b.db", "BOXCAR_SAMPLE_INTERVAL": "0", "BOXCAR_LOG_LEVEL": "debug"]
        ) { file[$0] }
        #expect(settings.agent.databasePath == "/x/a.db")
        #expect(settings.agent.artifactsDirectory == "/x/artifacts")
        #expect(settings.agent.retention == .seconds(7200))
        #expect(settings.agent.maxDatabaseBytes == 1 << 20)
        #expect(settings.agent.sampleInterval == nil)
        #expect(settings.logLevel == .debug)  // the environment beats the file
        #expect(settings.agent.durability == .full)  // the file beats the default
        #expect(throws: CLIError.self) { try AgentSettings.flags(["--no-such-setting", "1"]) }
        #expect(throws: CLIError.self) { try AgentSettings.flags(["--db"]) }
        #expect(throws: CLIError.self) { try AgentSettings.resolve(flags: ["ingest-memory-bytes": "512K"], environment: [:]) { _ in nil } }
    }

    @Test func aSampleIntervalOutsideItsRangeIsRefusedWithTheRange() throws {
        for text in ["1e-9", "0.001", "3601", "-1", "nan", "inf", "fast"] {
            let error = #expect(throws: CLIError.self) {
                try AgentSettings.resolve(flags: ["sample-interval": text], environment: [:]) { _ in nil }
            }
            #expect("\(error!)".contains("0 (sampling off) or 0.01 to 3600 seconds, not \(text)"))
        }
        for (text, milliseconds) in [("0.01", Int64(10)), ("3600", 3_600_000), ("0.5", 500)] {
            let settings = try AgentSettings.resolve(flags: ["sample-interval": text], environment: [:]) { _ in nil }
            #expect(settings.agent.sampleInterval == .milliseconds(milliseconds))
        }
        #expect(try AgentSettings.resolve(flags: ["sample-interval": "0"], environment: [:]) { _ in nil }.agent.sampleInterval == nil)
    }

    @Test func theConfigurationFileRefusesUnknownKeysListsAndEmptyValues() throws {
        func problem(_ yaml: String) -> String? {
            do {
                try ConfigurationFile.check(yaml, path: "/etc/boxcar/boxcar.yaml", settings: AgentSettings.all)
                return nil
            } catch { return "\(error)" }
        }
        #expect(problem("db: /var/lib/boxcar/boxcar.db\nsample-interval: 0.5\nallow-remote: true\n") == nil)
        #expect(problem("# nothing set\n") == nil)
        #expect(problem(SettingsDocs.configFile()) == nil)  // the documented file, all commented out
        #expect(problem("sample-intervall: 1\n")?.contains("unknown key `sample-intervall`") == true)
        #expect(problem("config: /other.yaml\n")?.contains("`config` is set by its flag or environment variable only") == true)
        #expect(problem("label:\n  - a=b\n")?.contains("`label` takes one value") == true)
        #expect(problem("upstream: {host: x}\n")?.contains("`upstream` takes one value") == true)
        #expect(problem("db:\n")?.contains("`db` has no value") == true)
        #expect(problem("- db\n")?.contains("must be a mapping") == true)
        #expect(problem("db: [unclosed\n")?.contains("is not valid YAML") == true)
    }
}
