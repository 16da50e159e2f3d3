import ArgumentParser
import BoxcarAPI
import BoxcarClient
import Glibc

/// `boxcar top`: the machine and its trainers, live, as the running agent samples them
/// (boxcar.v1 Snapshot over its socket). Not a terminal: one frame, printed.
struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Watch the machine and its attached trainers live, as the agent samples them.",
        discussion: """
            CPU (each core, or totals when there are many), memory, pressure, each GPU's \
            utilization, memory, power against its limit, temperature and what holds its clocks \
            down, disks and network, and each attached trainer's processes with the points per \
            second it logs. q quits, j/k or the arrows scroll. Without a terminal, one frame is \
            printed; NO_COLOR turns colour off.

            Example: boxcar top --socket /run/boxcar/agent.sock
            """)

    @OptionGroup var connection: ConnectionOptions

    @Option(help: ArgumentHelp("Seconds between refreshes.", valueName: "SECONDS"))
    var every: Double = 1

    func validate() throws {
        guard every >= 0.1 && every <= 3600 else { throw ValidationError("--every must be 0.1 to 3600 seconds") }
    }

    func run() async throws {
        try await connection.withClient { client in
            // Asked before the terminal is taken: no agent is an error on the plain screen.
            let first = try await client.agent.snapshot(.init())
            guard isatty(STDOUT_FILENO) == 1 else { return try await printFrame(first, client) }
            try await watch(first, client)
        }
    }

    /// Not a terminal: one frame, as wide as $COLUMNS (else 80), whole, without colour. With
    /// trainers attached, a second snapshot a tick later gives the rate at which they log.
    private func printFrame(_ first: Boxcar_V1_SnapshotResponse, _ client: AgentClient) async throws {
        var screen = TopScreen(snapshot: first)
        if !first.trainers.isEmpty {
            try await Task.sleep(for: .seconds(every))
            screen = TopScreen(snapshot: try await client.agent.snapshot(.init()), previous: first)
        }
        let width = getenv("COLUMNS").flatMap { Int(String(cString: $0)) }.flatMap { $0 > 0 ? $0 : nil } ?? 80
        for line in [screen.header()] + screen.body(width: width) { print(line.rendered(width: width, colour: false)) }
    }

    private func watch(_ first: Boxcar_V1_SnapshotResponse, _ client: AgentClient) async throws {
        let terminal = try Terminal()
        let colour = Self.coloured()
        var screen = TopScreen(snapshot: first)
        var offset = 0
        let every = self.every
        let refresh = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(every))
                do {
                    terminal.post(.snapshot(try await client.agent.snapshot(.init())))
                } catch {
                    terminal.post(.failed(describe(error)))
                }
            }
        }
        defer {
            refresh.cancel()
            terminal.end()
        }

        func draw() {
            let (width, height) = Terminal.size()
            let body = screen.body(width: width)
            let rows = max(1, height - 1)
            offset = max(0, min(offset, body.count - rows))
            let shown = offset..<min(body.count, offset + rows)
            let header = screen.header(shown: body.count > rows ? shown : nil, of: body.count)
            terminal.draw(([header] + body[shown]).map { $0.rendered(width: width, colour: colour) }, height: height)
        }

        draw()
        for await event in terminal.events {
            switch event {
            case .key(.quit):
                return
            case .key(let key):
                let page = max(1, Terminal.size().height - 2)
                switch key {
                case .up: offset -= 1
                case .down: offset += 1
                case .pageUp: offset -= page
                case .pageDown: offset += page
                case .home: offset = 0
                case .end: offset = .max / 2
                case .redraw, .quit: break
                }
            case .resize:
                break
            case .signal(SIGTSTP):
                terminal.suspend()
            case .signal(let signal):
                refresh.cancel()
                terminal.end(dyingOf: signal)
            case .snapshot(let snapshot):
                screen.previous = screen.snapshot
                screen.snapshot = snapshot
                screen.problem = nil
            case .failed(let message):
                screen.problem = "the agent does not answer: " + message
            }
            draw()
        }
    }

    /// Colour unless NO_COLOR is set to anything (no-color.org) or the terminal is dumb.
    static func coloured() -> Bool {
        let noColour = getenv("NO_COLOR").map { $0.pointee != 0 } ?? false
        let dumb = getenv("TERM").map { String(cString: $0) == "dumb" } ?? false
        return !noColour && !dumb
    }
}
