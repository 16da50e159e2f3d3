import BoxcarClient
import BoxcarModel
@testable import boxcar
import Logging
import ServiceLifecycle
import BoxcarTestSupport

/// Runs a real agent (the same service `boxcar agent` runs) on a socket in `directory`, calls
/// `body` with a client connected to it, then shuts it down gracefully as SIGTERM would.
func withAgent<R: Sendable>(
    in directory: TemporaryDirectory, limits: Limits = .standard,
    configure: (inout AgentConfiguration) -> Void = { _ in },
    _ body: (AgentClient) async throws -> R
) async throws -> R {
    var configuration = AgentConfiguration(
        databasePath: directory.file("data/boxcar.db"), socketPath: directory.file("agent.sock"),
        artifactsDirectory: directory.file("data/artifacts"), limits: limits)
    configure(&configuration)
    var logger = Logger(label: "test-agent")
    logger.logLevel = .warning
    let agent = Agent(configuration: configuration, logger: logger)
    let group = ServiceGroup(services: [agent], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
    return try await withThrowingTaskGroup(of: R?.self) { tasks in
        tasks.addTask {
            try await group.run()
            return nil
        }
        _ = try await agent.listeningAddresses()
        let result: R
        do {
            result = try await AgentClient.with(.unixSocket(configuration.socketPath), body)
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return result
    }
}
