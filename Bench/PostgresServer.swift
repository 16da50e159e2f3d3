import Foundation

/// A private PostgreSQL for the forward scenario, as the tests run one: Debian's server, `initdb`
/// into a temporary directory and `pg_ctl` on a free loopback port, as the `postgres` user when
/// the bench runs as root (the server refuses root). Server settings are the package's defaults.
struct PostgresServer {
    let bin: String
    let directory: String
    let port: Int
    private let asOther: [String]

    static func start(directory: String) throws -> PostgresServer {
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? [])
            .compactMap(Int.init).sorted()
        guard let version = versions.last else {
            throw BenchError("forward needs PostgreSQL's server (apt-get install postgresql), or --postgres URL")
        }
        let asOther = getuid() == 0 ? ["runuser", "-u", "postgres", "--"] : []
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 {
            try FileManager.default.setAttributes(
                [.ownerAccountName: "postgres", .groupOwnerAccountName: "postgres"], ofItemAtPath: directory)
        }
        let server = PostgresServer(
            bin: "/usr/lib/postgresql/\(version)/bin", directory: directory, port: try freePort(), asOther: asOther)
        try server.tool("initdb", "-D", directory + "/data", "-U", "boxcar", "--auth=trust", "-E", "UTF8")
        try server.tool(
            "pg_ctl", "-D", directory + "/data", "-l", directory + "/server.log", "-o",
            "-p \(server.port) -k \(directory) -c listen_addresses=127.0.0.1", "-w", "-t", "60", "start")
        return server
    }

    func url(_ database: String) -> String { "postgres://boxcar@127.0.0.1:\(port)/\(database)?sslmode=disable" }

    /// Runs SQL (or a psql meta-command such as `\copy`) through psql; returns its output.
    @discardableResult
    func psql(_ database: String, _ command: String) throws -> String {
        try run(bin + "/psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "boxcar", "-d", database,
                                "-v", "ON_ERROR_STOP=1", "-At", "-c", command])
    }

    func stop() {
        _ = try? tool("pg_ctl", "-D", directory + "/data", "-m", "immediate", "-w", "stop")
    }

    @discardableResult
    private func tool(_ name: String, _ arguments: String...) throws -> String {
        let command = asOther + [bin + "/" + name] + arguments
        return try run(command[0], Array(command.dropFirst()), directory: directory)
    }
}

/// Runs a program to its end; its standard output, or an error holding its standard error.
///
/// Spawned and waited for by hand, its output through files: Foundation's `Process` learns that a
/// child ended when a socket it shares with it closes, and `pg_ctl start` leaves a server behind
/// that holds it open for ever.
@discardableResult
func run(_ program: String, _ arguments: [String], directory: String? = nil) throws -> String {
    let base = NSTemporaryDirectory() + "boxcar-bench-run-\(UUID().uuidString)"
    defer {
        try? FileManager.default.removeItem(atPath: base + ".out")
        try? FileManager.default.removeItem(atPath: base + ".err")
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, base + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    // In `directory` through env(1): a server started as another user must not start in ours.
    let command = directory.map { ["env", "-C", $0, program] } ?? [program]
    let argv: [UnsafeMutablePointer<CChar>?] = (command + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let spawned = posix_spawnp(&pid, command[0], &actions, nil, argv, environ)
    guard spawned == 0 else { throw BenchError("cannot run \(program): \(String(cString: strerror(spawned)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let out = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
    // Exited normally with 0 (the low 7 bits hold a terminating signal, the next 8 the code).
    guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
        let err = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
        throw BenchError("\(program) \(arguments.joined(separator: " ")) failed (status \(status)): \(err)")
    }
    return out.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A TCP port free on 127.0.0.1 now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard bound else { throw BenchError("no free TCP port on 127.0.0.1") }
    return Int(UInt16(bigEndian: address.sin_port))
}
