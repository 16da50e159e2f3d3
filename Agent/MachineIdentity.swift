#if canImport(Glibc)
import Glibc
#endif
import BoxcarStore
import FoundationEssentials
import Logging

/// The names of the machine the agent runs on: what Health reports, and what a database's
/// identity to an upstream is tied to (Store+Identity.swift).
func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count - 1)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// systemd's machine id (D-Bus's where systemd is absent); "" where neither is, as in some
/// containers: the host name alone then tells machines apart.
func machineID() -> String {
    for path in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let id = text.filter { !$0.isWhitespace }
            if !id.isEmpty { return id }
        }
    }
    return ""
}

/// The database's identity on this machine, logged; a new one when the file was made elsewhere.
@discardableResult
func establishIdentity(_ store: Store, logger: Logger) async throws -> AgentIdentity {
    let (identity, replaced) = try await store.identity(machineID: machineID(), hostName: hostName())
    if let replaced {
        logger.warning(
            "this database was made on another machine: it takes a new agent id here, and its records up to seq \(identity.firstSequence) stay the other's",
            metadata: [
                "agent_id": "\(identity.agentID)", "previous_agent_id": "\(replaced.agentID)",
                "previous_host": "\(replaced.hostName)", "previous_machine_id": "\(replaced.machineID)",
            ])
    } else {
        logger.info("agent identity", metadata: ["agent_id": "\(identity.agentID)"])
    }
    return identity
}
