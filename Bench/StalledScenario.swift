#if canImport(Glibc)
import Glibc
#endif
import BoxcarAPI
import BoxcarClient
import Foundation
import GRPCCore

/// `stalled`: what readers that stop reading cost the agent. Each of 200 DownloadFile calls of a
/// 16 MiB file runs on a connection of its own, spoken in raw HTTP/2 by a client that reads
/// nothing and so grants no window past HTTP/2's first 65,535 bytes. Reported: the agent's
/// resident growth per stalled stream once it settles, and how long until the agent has reset
/// every stream (its --stream-stall-timeout, 10 s here).
extension BoxcarBench {
    func stalled(directory: String) async throws {
        let streams = 200
        let stallTimeout = 10
        let agent = try AgentProcess.start(directory: directory + "/stalled", arguments: ["--stream-stall-timeout", "\(stallTimeout)"])
        defer { try? agent.stop() }
        try agent.waitUntilAccepting()
        let fileID = try await AgentClient.with(.unixSocket(agent.socketPath)) { client in
            let experiment = try await client.modelStore.createExperiment(.with {
                $0.name = "stalled"
                $0.namespace = "bench"
            }).experimentID
            let chunk = Data(repeating: 7, count: 1 << 20)
            return try await client.modelStore.uploadFile(request: StreamingClientRequest { writer in
                try await writer.write(.with {
                    $0.metadata = .with {
                        $0.parentID = experiment
                        $0.path = "model.bin"
                    }
                })
                for _ in 0..<16 { try await writer.write(.with { $0.chunks = chunk }) }
            }).fileID
        }
        let pid = agent.process.processIdentifier
        let before = try residentBytes(pid)
        let request = try Modelbox_DownloadFileRequest.with { $0.fileID = fileID }.serializedBytes() as [UInt8]
        let opened = Date()
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        for _ in 0..<streams { sockets.append(try StalledCall.open(socketPath: agent.socketPath, request: request)) }
        // Held: sampled until two readings a second apart agree within 1 %.
        var held = try residentBytes(pid)
        while true {
            try await Task.sleep(for: .seconds(1))
            let now = try residentBytes(pid)
            defer { held = max(held, now) }
            if abs(now - held) <= held / 100 { break }
        }
        // Ended: after what HTTP/2 let through, each connection gets its stream's RST_STREAM.
        var waiting = Set(sockets)
        while !waiting.isEmpty {
            guard Date().timeIntervalSince(opened) < Double(stallTimeout * 6) else {
                throw BenchError("\(waiting.count) stalled streams were not reset within \(stallTimeout * 6) s")
            }
            for fd in waiting where StalledCall.wasReset(fd) { waiting.remove(fd) }
            try await Task.sleep(for: .milliseconds(50))
        }
        report([
            "scenario": "stalled", "streams": streams, "file_bytes": 16 << 20,
            "rss_before_bytes": before, "rss_held_bytes": held,
            "held_bytes_per_stream": (held - before) / streams,
            "stall_timeout_seconds": stallTimeout, "seconds_until_all_reset": Date().timeIntervalSince(opened),
        ])
    }
}

/// A call in raw HTTP/2 over a unix socket: the preface, empty SETTINGS, the request's HEADERS
/// (HPACK literals) and DATA, and then nothing: no SETTINGS acknowledgement, no WINDOW_UPDATE.
private enum StalledCall {
    static func open(socketPath: String, request: [UInt8]) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            for (index, byte) in socketPath.utf8.prefix(path.count - 1).enumerated() { path[index] = byte }
        }
        var attempts = 0
        while withUnsafePointer(to: &address, {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }) != 0 {
            // The agent's accept queue is full for a moment: it accepts as fast as it can.
            guard errno == EAGAIN, attempts < 500 else {
                close(fd)
                throw BenchError("cannot connect to \(socketPath): errno \(errno)")
            }
            attempts += 1
            usleep(10_000)
        }
        var bytes = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        bytes += frame(type: 0x4, flags: 0, stream: 0, payload: [])
        var headers: [UInt8] = []
        for (name, value) in [
            (":method", "POST"), (":scheme", "http"), (":path", "/modelbox.ModelStore/DownloadFile"),
            (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers"),
        ] {
            // A literal header field without indexing, a new name, no Huffman coding.
            headers += [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
        }
        bytes += frame(type: 0x1, flags: 0x4, stream: 1, payload: headers)  // END_HEADERS
        let length = UInt32(request.count)
        let message = [0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + request
        bytes += frame(type: 0x0, flags: 0x1, stream: 1, payload: message)  // END_STREAM
        guard send(fd, bytes, bytes.count, 0) == bytes.count else {
            close(fd)
            throw BenchError("cannot send the request: errno \(errno)")
        }
        return fd
    }

    private static func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags,
                UInt8(stream >> 24), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    /// Reads what has arrived, without waiting, and says whether it holds an RST_STREAM frame (or
    /// the agent closed the connection). What the agent sends before the reset is at most the
    /// first window: it fits the socket's buffer whole, so a frame is never read in halves.
    static func wasReset(_ fd: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 18)
        let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT | MSG_PEEK))
        if count == 0 { return true }
        guard count > 0 else { return false }
        var at = 0
        while at + 9 <= count {
            let length = Int(buffer[at]) << 16 | Int(buffer[at + 1]) << 8 | Int(buffer[at + 2])
            if buffer[at + 3] == 0x3 || buffer[at + 3] == 0x7 { return true }  // RST_STREAM, GOAWAY
            at += 9 + length
        }
        return false
    }
}
