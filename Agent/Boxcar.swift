import ArgumentParser

@main
struct Boxcar: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boxcar",
        abstract: "A hardware-metrics and experiment-logging agent for machine-learning training.",
        discussion: """
            `boxcar agent` runs the agent. The other commands read what it holds: over its socket
            while it runs, or from its database file with --db PATH (read-only, also while an agent
            writes to it).
            """,
        subcommands: [
            AgentCommand.self, ExperimentsCommand.self, MetricsCommand.self, EventsCommand.self,
            ArtifactsCommand.self, ExportCommand.self, DoctorCommand.self, SettingsCommand.self,
        ])
}
