#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials

/// The embedded defaults: where the agent keeps its files when nothing says otherwise.
enum Defaults {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// `$XDG_DATA_HOME/boxcar`, else `~/.local/share/boxcar`.
    static var dataDirectory: String {
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty { return xdg + "/boxcar" }
        return home + "/.local/share/boxcar"
    }

    static var databasePath: String { dataDirectory + "/boxcar.db" }

    /// `$XDG_RUNTIME_DIR/boxcar/agent.sock`, else `/tmp/boxcar-<uid>/agent.sock`.
    static var socketPath: String {
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            return runtime + "/boxcar/agent.sock"
        }
        return "/tmp/boxcar-\(getuid())/agent.sock"
    }

    /// Uploaded artifacts live beside the database they belong to.
    static func artifactsDirectory(forDatabase path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "artifacts" }
        return String(path[..<slash]) + "/artifacts"
    }

    static var home: String {
        if let home = environment["HOME"], !home.isEmpty { return home }
        if let entry = getpwuid(getuid()), let dir = entry.pointee.pw_dir { return String(cString: dir) }
        return "/tmp"
    }
}
