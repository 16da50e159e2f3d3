import BoxcarAPI
import Dispatch
import Glibc

// The terminal as `boxcar top` drives it: keys read one at a time without echo, the alternate
// screen, the window's size, and the terminal put back as it was however top ends: `q`, SIGINT,
// SIGTERM, SIGHUP, or a crash.
//
// Written on termios and ECMA-48 / xterm sequences rather than a library: of the packages this
// project can use, ConsoleKit and Rainbow style output but read only whole lines and know nothing
// of raw keys, the alternate screen or resizes; ncurses would do all of it, but `boxcar` is one
// binary for the agent and its commands, and linking it to libncursesw would make the agent need
// a library that a server need not have, for a view that uses five sequences (every terminal
// emulator and tmux speaks them). Nothing here is kept once top ends.

/// What the terminal tells the view.
enum TerminalEvent: Sendable {
    case key(Key)
    /// The window changed size.
    case resize
    /// SIGINT, SIGTERM or SIGHUP: end; SIGTSTP: stop for the shell (Ctrl-Z).
    case signal(Int32)
    /// The view's own: a snapshot arrived, or the agent did not answer.
    case snapshot(Boxcar_V1_SnapshotResponse)
    case failed(String)

    enum Key: Sendable, Equatable {
        case quit, up, down, pageUp, pageDown, home, end, redraw
    }
}

/// What the signal handlers use, in memory of their own: set before they are installed, then only
/// read, by them. Behind constant pointers, so that a handler touches no Swift variable (whose
/// access is checked at run time, and whose first use runs its initializer).
nonisolated(unsafe) private let savedMode = UnsafeMutablePointer<termios>.allocate(capacity: 1)
nonisolated(unsafe) private let hasSavedMode = UnsafeMutablePointer<Bool>.allocate(capacity: 1)
nonisolated(unsafe) private let leaveSequence = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: Terminal.leave.utf8.count)
nonisolated(unsafe) private let previousActions = UnsafeMutablePointer<sigaction>.allocate(capacity: Int(NSIG))
/// Where the signal handler passes the signals the view handles: the write end of a pipe.
nonisolated(unsafe) private let signalPipe = UnsafeMutablePointer<Int32>.allocate(capacity: 1)

/// Puts the terminal back and hands the signal to whoever had it before (the Swift runtime's
/// backtracer prints its report on the restored screen), then dies of it: a handler that returns
/// (the signal was sent, not a fault) must not leave top drawing on the restored screen.
/// Async-signal-safe: write, tcsetattr, sigaction, pthread_sigmask and raise only.
private func restoreAfterCrash(_ signal: Int32) {
    _ = write(STDOUT_FILENO, leaveSequence.baseAddress, leaveSequence.count)
    if hasSavedMode.pointee { tcsetattr(STDIN_FILENO, TCSANOW, savedMode) }
    sigaction(signal, previousActions + Int(signal), nil)
    var blocked = sigset_t()
    sigemptyset(&blocked)
    sigaddset(&blocked, signal)
    pthread_sigmask(SIG_UNBLOCK, &blocked, nil)
    raise(signal)
    var fallback = sigaction()
    fallback.__sigaction_handler.sa_handler = SIG_DFL
    sigaction(signal, &fallback, nil)
    raise(signal)
}

/// Passes the signal to the view's input thread.
private func forwardSignal(_ signal: Int32) {
    var byte = UInt8(truncatingIfNeeded: signal)
    _ = write(signalPipe.pointee, &byte, 1)
}

final class Terminal: Sendable {
    /// Enters the alternate screen, clears it, and hides the cursor.
    static let enter = "\u{1B}[?1049h\u{1B}[?25l\u{1B}[2J"
    /// Plain text again, the cursor shown, the alternate screen left.
    static let leave = "\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l"
    static let crashSignals = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS, SIGQUIT]
    static let viewSignals = [SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP]

    let events: AsyncStream<TerminalEvent>
    private let sink: AsyncStream<TerminalEvent>.Continuation
    private let readsKeys: Bool

    /// Takes the terminal: keys unbuffered and unechoed (where standard input is a terminal), the
    /// alternate screen, the signal and crash handlers, and a thread that reads keys and signals.
    init() throws {
        (events, sink) = AsyncStream.makeStream(of: TerminalEvent.self)
        readsKeys = isatty(STDIN_FILENO) == 1
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw CLIError("top cannot make a pipe: \(String(cString: strerror(errno)))") }
        // A handler must never block on a full pipe.
        for end in ends { _ = fcntl(end, F_SETFL, O_NONBLOCK) }
        signalPipe.initialize(to: ends[1])
        hasSavedMode.initialize(to: false)
        savedMode.initialize(to: termios())
        _ = leaveSequence.initialize(from: Self.leave.utf8)
        previousActions.initialize(repeating: sigaction(), count: Int(NSIG))
        if readsKeys {
            guard tcgetattr(STDIN_FILENO, savedMode) == 0 else {
                throw CLIError("top cannot read the terminal's mode: \(String(cString: strerror(errno)))")
            }
            hasSavedMode.pointee = true
        }
        for signal in Self.crashSignals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = restoreAfterCrash
            sigemptyset(&action.sa_mask)
            // On the runtime's alternate stack where there is one: a stack overflow is a SIGSEGV too.
            action.sa_flags = SA_ONSTACK
            sigaction(signal, &action, previousActions + Int(signal))
        }
        for signal in Self.viewSignals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = forwardSignal
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(signal, &action, nil)
        }
        resume()
        let sink = self.sink
        let readsKeys = self.readsKeys
        let signals = ends[0]
        DispatchQueue(label: "boxcar.top.input").async { Self.read(keys: readsKeys, signals: signals, into: sink) }
    }

    /// Raw keys and the alternate screen (again, after a stop).
    func resume() {
        if hasSavedMode.pointee {
            var raw = savedMode.pointee
            raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
            raw.c_cc.6 = 1  // VMIN: a read returns as soon as a key is there
            raw.c_cc.5 = 0  // VTIME
            tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        }
        Self.write(Self.enter)
    }

    /// The terminal as it was. The handlers stay: a signal now finds nothing left to restore.
    func end() {
        Self.write(Self.leave)
        if hasSavedMode.pointee { tcsetattr(STDIN_FILENO, TCSANOW, savedMode) }
    }

    /// Ends the view for good on `signal`: the terminal put back, then the signal's own action
    /// (the shell sees top killed by it).
    func end(dyingOf signal: Int32) -> Never {
        end()
        sink.finish()
        var action = sigaction()
        action.__sigaction_handler.sa_handler = SIG_DFL
        sigaction(signal, &action, nil)
        raise(signal)
        exit(128 + signal)
    }

    /// Stops for the shell (Ctrl-Z) with the terminal put back, and takes it again when continued.
    func suspend() {
        end()
        raise(SIGSTOP)  // to this thread: it stops before it goes on (a signal to the process may be taken by another thread first)
        resume()
    }

    /// Adds an event of the view's own (a snapshot arrived) to the terminal's.
    func post(_ event: TerminalEvent) {
        sink.yield(event)
    }

    /// The window's columns and rows; 80×24 where the size cannot be read.
    static func size() -> (width: Int, height: Int) {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0, size.ws_row > 0 else { return (80, 24) }
        return (Int(size.ws_col), Int(size.ws_row))
    }

    /// Draws `lines`, one a row from the top, clearing each row first (a line shorter than the
    /// one there before, or a window made smaller, leaves nothing behind), and clears the rows
    /// below. Each line must already fit the width: the last column is written like any other.
    func draw(_ lines: [String], height: Int) {
        var frame = ""
        for row in 0..<height {
            frame += "\u{1B}[\(row + 1);1H\u{1B}[2K"
            if row < lines.count { frame += lines[row] }
        }
        Self.write(frame)
    }

    static func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }

    /// The input thread: keys from standard input and signals from the pipe, as events.
    private static func read(keys: Bool, signals: Int32, into sink: AsyncStream<TerminalEvent>.Continuation) {
        var fds = [pollfd(fd: signals, events: Int16(POLLIN), revents: 0)]
        if keys { fds.append(pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)) }
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 || errno == EINTR else { return }
            if fds[0].revents & Int16(POLLIN) != 0 {
                let count = Glibc.read(signals, &buffer, buffer.count)
                for byte in buffer.prefix(max(0, count)) {
                    sink.yield(Int32(byte) == SIGWINCH ? .resize : .signal(Int32(byte)))
                }
            }
            if fds.count > 1 && fds[1].revents != 0 {
                let count = Glibc.read(STDIN_FILENO, &buffer, buffer.count)
                // Standard input closed (the terminal went away): SIGHUP follows, or nothing will.
                guard count > 0 else {
                    fds.removeLast()
                    continue
                }
                for key in parseKeys(buffer.prefix(count)) { sink.yield(.key(key)) }
            }
        }
    }

    /// Keys in what one read gave: letters, and the arrows' and paging keys' escape sequences
    /// (ESC [ A, and ESC O A in the terminal's application mode).
    static func parseKeys(_ bytes: some Collection<UInt8>) -> [TerminalEvent.Key] {
        let bytes = Array(bytes)
        var keys: [TerminalEvent.Key] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "q"), UInt8(ascii: "Q"): keys.append(.quit)
            case UInt8(ascii: "j"), UInt8(ascii: "J"): keys.append(.down)
            case UInt8(ascii: "k"), UInt8(ascii: "K"): keys.append(.up)
            case UInt8(ascii: " "): keys.append(.pageDown)
            case UInt8(ascii: "g"): keys.append(.home)
            case UInt8(ascii: "G"): keys.append(.end)
            case 0x0C: keys.append(.redraw)  // Ctrl-L
            case 0x1B where index < bytes.count && (bytes[index] == UInt8(ascii: "[") || bytes[index] == UInt8(ascii: "O")):
                index += 1
                // Parameters, then the final byte.
                var parameters: [UInt8] = []
                while index < bytes.count, (0x30...0x3F).contains(bytes[index]) {
                    parameters.append(bytes[index])
                    index += 1
                }
                guard index < bytes.count else { break }
                let final = bytes[index]
                index += 1
                switch (final, parameters) {
                case (UInt8(ascii: "A"), _): keys.append(.up)
                case (UInt8(ascii: "B"), _): keys.append(.down)
                case (UInt8(ascii: "H"), _): keys.append(.home)
                case (UInt8(ascii: "F"), _): keys.append(.end)
                case (UInt8(ascii: "~"), [UInt8(ascii: "5")]): keys.append(.pageUp)
                case (UInt8(ascii: "~"), [UInt8(ascii: "6")]): keys.append(.pageDown)
                default: break
                }
            default:
                break
            }
        }
        return keys
    }
}
