import ArgumentParser

// boxcar: the command. `boxcar agent` (Agent.swift) opens the store, serves the services on the
// socket and TCP, samples the machine and handles signals; every setting is declared once in
// Settings/AgentSettings.swift. The read commands go through BoxcarClient, or BoxcarStore with
// --db. This is where the modules meet; none of them knows of it.

@main
struct Boxcar: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boxcar",
        abstract: "A hardware-metrics and experiment-logging agent for machine-learning training.",
        discussion: """
            `boxcar agent` runs the agent. The other commands read what it holds: over its socket \
            while it runs, or from its database file with --db PATH (read-only, also while an agent \
            writes to it).

            Example: boxcar agent & boxcar top
            """,
        subcommands: [
            AgentCommand.self, CollectorCommand.self, ExperimentsCommand.self, MetricsCommand.self, EventsCommand.self,
            ArtifactsCommand.self, ExportCommand.self, PlotCommand.self, StepsCommand.self, TopCommand.self, DoctorCommand.self, SettingsCommand.self,
        ])
}
