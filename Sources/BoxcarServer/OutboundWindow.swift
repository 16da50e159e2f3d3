import GRPCCore
import NIOCore
import NIOHTTP2
import Synchronization

// Flow control for what the agent sends. The transport writes a call's responses as the client's
// HTTP/2 window allows, but the call's handler hands them over faster than the event loop marks
// the stream unwritable: a DownloadFile that its reader stalled held 10 and more messages (a few
// MiB with 1 MiB chunks; 200 such streams took the agent to 856 MB). So each stream has an
// outbound window of its own: a handler's write waits while the stream has `OutboundWindow.bytes`
// the client has not taken, and a stream that takes nothing for the stall timeout is ended.
//
// The window is shared by two sides that meet nowhere else: the stream's channel handler
// (`OutboundFlowHandler`, which sees HTTP/2 send each DATA frame) and the call's writer (wrapped
// by `OutboundWindowInterceptor`). The handler names the stream's window in a header it adds to
// the request (a client's own header of that name is dropped), and the interceptor finds it there.

/// What one stream's handler has written and the client has not yet taken: the message on its way
/// to the transport, and the bytes it holds for the client.
final class OutboundWindow: Sendable {
    /// What a stream may hold for its client: a few HTTP/2 frames, enough to keep a reader that
    /// keeps up busy, and 256 KiB at most for a reader that stalls, plus the one message on its way
    /// (a unary answer is written whole, however large).
    static let bytes = 256 << 10

    private struct State {
        /// Messages written and not yet seen by the transport, and the bytes the transport holds.
        var inTransit = 0
        var unsent = 0
        /// Writes waiting, first come first served (a call writes from one task, but may from more).
        var waiters: [CheckedContinuation<Void, any Error>] = []
        var failure: (any Error)?

        /// Lets one more message go once the last has reached the transport and the transport holds
        /// less than the window, so that a handler never runs ahead of the event loop. (Letting
        /// several go, each guessed at the largest size seen, held more: 200 stalled downloads
        /// took a debug agent to 160 MB, against 122 MB.) Throws once the stream has ended.
        mutating func take() throws -> Bool {
            if let failure { throw failure }
            guard inTransit == 0 && unsent < OutboundWindow.bytes else {
                return false
            }
            inTransit += 1
            return true
        }
    }

    private let state = Mutex(State())

    /// Returns once one more message may be written; throws when the stream ended first.
    func reserve() async throws {
        if try state.withLock({ try $0.take() }) { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready: Result<Void, any Error>? = state.withLock { state in
                    do {
                        if try state.take() { return .success(()) }
                    } catch {
                        return .failure(error)
                    }
                    state.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            fail(CancellationError())
        }
    }

    /// `messages` reached the transport, in `bytes`.
    func handedOver(messages: Int, bytes: Int) {
        update {
            $0.inTransit = max(0, $0.inTransit - messages)
            $0.unsent += bytes
        }
    }

    /// `bytes` left for the client (or were dropped with the stream).
    func sent(bytes: Int) {
        update { $0.unsent = max(0, $0.unsent - bytes) }
    }

    private func update(_ change: (inout State) -> Void) {
        let resumed: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            change(&state)
            var resumed: [CheckedContinuation<Void, any Error>] = []
            while !state.waiters.isEmpty, (try? state.take()) == true {
                resumed.append(state.waiters.removeFirst())
            }
            return resumed
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Ends the window: the waiting write and every later one throw `error`.
    func fail(_ error: any Error) {
        let resumed: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            if state.failure == nil { state.failure = error }
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for continuation in resumed { continuation.resume(throwing: error) }
    }
}

/// The windows of the streams open now, by the number their requests carry.
final class OutboundWindows: Sendable {
    static let header = "boxcar-outbound-window"
    private let open = Mutex<[UInt64: OutboundWindow]>([:])
    private let next = Atomic<UInt64>(0)

    func add(_ window: OutboundWindow) -> UInt64 {
        let number = next.add(1, ordering: .relaxed).newValue
        open.withLock { $0[number] = window }
        return number
    }

    func remove(_ number: UInt64) {
        _ = open.withLock { $0.removeValue(forKey: number) }
    }

    func window(for metadata: Metadata) -> OutboundWindow? {
        // The first value is the agent's own: the stream's handler drops any a client sent.
        for text in metadata[stringValues: Self.header] {
            guard let number = UInt64(text) else { return nil }
            return open.withLock { $0[number] }
        }
        return nil
    }
}

/// Wraps each call's writer so that it writes within its stream's window.
struct OutboundWindowInterceptor: ServerInterceptor {
    let windows: OutboundWindows

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        var response = try await next(request, context)
        guard let window = windows.window(for: request.metadata), case .success(var contents) = response.accepted else {
            return response
        }
        let producer = contents.producer
        contents.producer = { writer in
            try await producer(RPCWriter(wrapping: WindowedWriter(base: writer, window: window)))
        }
        response.accepted = .success(contents)
        return response
    }
}

/// Writes each message when its stream's window lets it go.
private struct WindowedWriter<Element: Sendable>: RPCWriterProtocol {
    let base: RPCWriter<Element>
    let window: OutboundWindow

    func write(_ element: Element) async throws {
        try await window.reserve()
        try await base.write(element)
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
        for element in elements { try await write(element) }
    }
}

/// Sits on each HTTP/2 stream, next to the connection: it names the stream's window in its request,
/// gives back the window's bytes as HTTP/2 sends them, and ends a stream that sends nothing for
/// `stallTimeout` while it has bytes to send (its client reads nothing).
final class OutboundFlowHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let window = OutboundWindow()
    private let windows: OutboundWindows
    private let stallTimeout: TimeAmount
    private let stalled: @Sendable () -> Void
    private var number: UInt64?
    private var namedInRequest = false
    private var messages = MessageCounter()
    /// DATA bytes handed to HTTP/2 and not yet sent, and when the last of them went.
    private var unsent = 0
    private var lastProgress = NIODeadline.now()
    private var check: Scheduled<Void>?

    init(windows: OutboundWindows, stallTimeout: Duration, stalled: @escaping @Sendable () -> Void) {
        self.windows = windows
        self.stallTimeout = .nanoseconds(Int64(stallTimeout / .nanoseconds(1)))
        self.stalled = stalled
    }

    func handlerAdded(context: ChannelHandlerContext) {
        number = windows.add(window)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        end()
    }

    func channelInactive(context: ChannelHandlerContext) {
        end()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var payload = unwrapInboundIn(data)
        if !namedInRequest, case .headers(var headers) = payload, let number {
            namedInRequest = true
            headers.headers.remove(name: OutboundWindows.header)
            headers.headers.add(name: OutboundWindows.header, value: String(number))
            payload = .headers(headers)
        }
        context.fireChannelRead(wrapInboundOut(payload))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .data(let frame) = unwrapOutboundIn(data), case .byteBuffer(var rest) = frame.data else {
            context.write(data, promise: promise)
            return
        }
        window.handedOver(messages: messages.count(in: rest), bytes: rest.readableBytes)
        if unsent == 0 {
            lastProgress = .now()
            scheduleCheck(context: context, at: lastProgress + stallTimeout)
        }
        // Written in pieces of 64 KiB (16 KiB pieces cost a third of the download rate), each a promise
        // of its own: HTTP/2 completes a write only once all of it is sent, and a reader taking a
        // 256 KiB message slowly must show its progress piece by piece, not be taken for stalled.
        while rest.readableBytes > Self.pieceBytes, let piece = rest.readSlice(length: Self.pieceBytes) {
            send(.init(data: .byteBuffer(piece)), context: context, promise: nil)
        }
        var last = frame
        last.data = .byteBuffer(rest)
        send(last, context: context, promise: promise)
    }

    private static let pieceBytes = 1 << 16

    private func send(_ frame: HTTP2Frame.FramePayload.Data, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        let bytes = frame.data.readableBytes
        let written = promise ?? context.eventLoop.makePromise()
        unsent += bytes
        written.futureResult.assumeIsolated().whenComplete { _ in
            self.unsent -= bytes
            self.lastProgress = .now()
            self.window.sent(bytes: bytes)
        }
        context.write(wrapOutboundOut(.data(frame)), promise: written)
    }

    private func scheduleCheck(context: ChannelHandlerContext, at deadline: NIODeadline) {
        check?.cancel()
        let loop = context.eventLoop.assumeIsolated()
        let context = NIOLoopBound(context, eventLoop: context.eventLoop)
        check = loop.scheduleTask(deadline: deadline) {
            guard self.unsent > 0 else { return }
            let due = self.lastProgress + self.stallTimeout
            guard NIODeadline.now() >= due else {
                self.scheduleCheck(context: context.value, at: due)
                return
            }
            self.window.fail(RPCError(
                code: .deadlineExceeded,
                message: "the client read nothing of this stream for \(self.stallTimeout.nanoseconds / 1_000_000_000) s (--stream-stall-timeout)"))
            self.stalled()
            context.value.close(promise: nil)
        }
    }

    private func end() {
        check?.cancel()
        check = nil
        window.fail(RPCError(code: .cancelled, message: "the stream was closed"))
        if let number {
            windows.remove(number)
            self.number = nil
        }
    }
}

/// Counts the gRPC messages that end in a run of DATA bytes: each is a flag byte, a 4-byte length
/// and that many bytes, and may start in one frame and end in a later one.
struct MessageCounter {
    /// Bytes of the current message's prefix seen so far, and the bytes of its body still to come.
    private var prefix: [UInt8] = []
    private var remaining = 0

    mutating func count(in buffer: ByteBuffer) -> Int {
        var buffer = buffer
        var ended = 0
        while buffer.readableBytes > 0 {
            if remaining > 0 {
                let skipped = min(remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: skipped)
                remaining -= skipped
                if remaining == 0 { ended += 1 }
                continue
            }
            // A whole prefix in this frame (the usual case) is read in place, without a copy.
            if prefix.isEmpty, buffer.readableBytes >= 5, let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self) {
                buffer.moveReaderIndex(forwardBy: 5)
                remaining = Int(length)
                if remaining == 0 { ended += 1 }
                continue
            }
            let wanted = 5 - prefix.count
            prefix += buffer.readBytes(length: min(wanted, buffer.readableBytes)) ?? []
            guard prefix.count == 5 else { break }
            remaining = prefix[1...4].reduce(0) { $0 << 8 | Int($1) }
            prefix.removeAll(keepingCapacity: true)
            if remaining == 0 { ended += 1 }
        }
        return ended
    }
}
