import BoxcarModel

/// Who a database is to an upstream: every record it forwards is keyed by (agent id, seq), so the
/// id must name one stream of sequence numbers. It is made once per database, with the machine it
/// was made on. A copy of the file started on another machine would continue the same numbers
/// with different records, so there it takes a new id; the records it already held stay the old
/// identity's (`firstSequence`). The machine is told by its machine id where both sides have one
/// (a renamed host is the same machine), else by its host name.
public struct AgentIdentity: Sendable, Equatable {
    /// A random (version 4) UUID, lowercase, with dashes.
    public let agentID: String
    /// `/etc/machine-id` of the machine it was made on ("" where there is none).
    public let machineID: String
    public let hostName: String
    /// The last record's sequence number when the identity was made: the records after it are
    /// this identity's.
    public let firstSequence: Int64
    public let createdNanoseconds: Int64
}

extension Store {
    /// This database's identity on the machine named by `machineID` and `hostName`: the current
    /// one if it was made there, else a new one (made on first use, and when the file was made on
    /// another machine: then `replaced` is the one it had).
    public func identity(machineID: String, hostName: String) async throws -> (current: AgentIdentity, replaced: AgentIdentity?) {
        try await write { context in
            let current = try Self.currentIdentity(context.connection)
            if let current, Self.sameMachine(current, machineID: machineID, hostName: hostName) {
                return (current, nil)
            }
            let made = AgentIdentity(
                agentID: randomUUID(), machineID: machineID, hostName: hostName,
                firstSequence: context.sequence, createdNanoseconds: WallClock.now())
            let insert = try context.connection.statement("""
                INSERT INTO identities (agent_id, machine_id, host_name, first_seq, created_ns) VALUES (?, ?, ?, ?, ?)
                """)
            insert.bind([made.agentID, made.machineID, made.hostName, made.firstSequence, made.createdNanoseconds])
            try insert.run()
            return (made, current)
        }
    }

    static func sameMachine(_ identity: AgentIdentity, machineID: String, hostName: String) -> Bool {
        if !identity.machineID.isEmpty && !machineID.isEmpty { return identity.machineID == machineID }
        return identity.hostName == hostName
    }

    static func currentIdentity(_ connection: Connection) throws -> AgentIdentity? {
        let statement = try connection.statement("""
            SELECT agent_id, machine_id, host_name, first_seq, created_ns FROM identities ORDER BY number DESC LIMIT 1
            """)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return AgentIdentity(
            agentID: statement.string(0), machineID: statement.string(1), hostName: statement.string(2),
            firstSequence: statement.int64(3), createdNanoseconds: statement.int64(4))
    }
}

/// A version 4 UUID: 122 random bits, lowercase 8-4-4-4-12.
func randomUUID() -> String {
    var generator = SystemRandomNumberGenerator()
    var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
    bytes[6] = bytes[6] & 0x0f | 0x40  // version 4
    bytes[8] = bytes[8] & 0x3f | 0x80  // the RFC 4122 variant
    let hex = bytes.hexString
    let cuts = [0, 8, 12, 16, 20, 32].map { hex.index(hex.startIndex, offsetBy: $0) }
    return (0..<5).map { String(hex[cuts[$0]..<cuts[$0 + 1]]) }.joined(separator: "-")
}
