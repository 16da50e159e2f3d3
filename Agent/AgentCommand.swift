#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import ServiceLifecycle

/// `boxcar agent`: runs the agent in the foreground until SIGINT, SIGTERM or SIGHUP (a closed
/// terminal: it stops as gracefully as for the others, and reloads nothing).
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the agent in the foreground.",
        discussion: "Each setting comes from its flag, else the environment (BOXCAR_DB, BOXCAR_SOCKET, …), "
            + "else the configuration file (--config or BOXCAR_CONFIG; see Config/boxcar.yaml), else the default.\n\n"
            + "Example: boxcar agent --http 127.0.0.1:9464 --sample-interval 0.5\n\n"
            + AgentSettings.all.map { "  \($0.usage)\n      \($0.help.filter { $0 != "`" }) (\($0.environmentName); default: \($0.defaultText.filter { $0 != "`" }))" }
            .joined(separator: "\n"))

    // The settings are declared once, in AgentSettings.all, and read from here by their names.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var settings: [String] = []

    func run() async throws {
        let flags = try AgentSettings.flags(settings)
        raiseFileLimit()
        keepCreatedFilesPrivate()
        let settings = try await AgentSettings.resolve(flags: flags, environment: Defaults.environment)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = settings.logLevel
            return handler
        }
        let logger = Logger(label: "boxcar.agent")
        let agent = Agent(configuration: settings.agent, logger: logger)
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: agent)], gracefulShutdownSignals: [.sigterm, .sigint, .sighup],
            logger: logger)
        // Calls still running after this long are cancelled, so shutdown ends within 5 s.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(3)
        do {
            try await ServiceGroup(configuration: groupConfiguration).run()
        } catch {
            throw CLIError("the agent stopped: \(describe(error))")
        }
    }
}

/// The agent keeps /proc and /sys files open between samples; the usual soft limit (1024) is
/// raised to the hard one so that a large trainer's process tree cannot starve SQLite and the
/// listeners of descriptors.
func raiseFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}
