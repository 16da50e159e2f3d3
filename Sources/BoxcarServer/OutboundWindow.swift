import GRPCCore
import NIOCore
import NIOHTTP2
import Synchronization

// Flow control for what the agent sends. The transport writes a call's responses as the client's
// HTTP/2 window allows, but the call's handler hands them over faster than the event loop marks
// the stream unwritable: a DownloadFile that its reader stalled held 10 and more messages (a few
// MiB with 1 MiB chunks; 200 such streams took the agent to 856 MB). So each stream has an
// outbound window of its own: a handler's write waits (StreamFlowInterceptor) while the stream has
// `OutboundWindow.bytes` the client has not taken, and a stream that takes nothing for the stall
// timeout is ended.

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

/// Sits on each HTTP/2 stream, next to the connection: it gives back the window's bytes as HTTP/2
/// sends them, and ends a stream that sends nothing for `stallTimeout` while it has bytes to send
/// (its client reads nothing).
final class OutboundFlowHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let window: OutboundWindow
    private let stallTimeout: TimeAmount
    private let stalled: @Sendable () -> Void
    private var messages = GRPCFraming()
    /// DATA bytes handed to HTTP/2 and not yet sent, and when the last of them went.
    private var unsent = 0
    private var lastProgress = NIODeadline.now()
    private var check: Scheduled<Void>?
    /// Whether a write is being passed on in pieces, and whether a flush came through meanwhile.
    private var writingPieces = false
    private var flushedMidWrite = false

    init(window: OutboundWindow, stallTimeout: Duration, stalled: @escaping @Sendable () -> Void) {
        self.window = window
        self.stallTimeout = .nanoseconds(Int64(stallTimeout / .nanoseconds(1)))
        self.stalled = stalled
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        window.fail(RPCError(code: .cancelled, message: "the stream was closed"))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .data(let frame) = unwrapOutboundIn(data), case .byteBuffer(var rest) = frame.data else {
            context.write(data, promise: promise)
            return
        }
        window.handedOver(messages: messages.countEnded(in: rest), bytes: rest.readableBytes)
        if unsent == 0 {
            lastProgress = .now()
            scheduleCheck(context: context, at: lastProgress + stallTimeout)
        }
        // Written in pieces of 64 KiB (16 KiB pieces cost a third of the download rate), each a promise
        // of its own: HTTP/2 completes a write only once all of it is sent, and a reader taking a
        // 256 KiB message slowly must show its progress piece by piece, not be taken for stalled.
        writingPieces = true
        while rest.readableBytes > Self.pieceBytes, let piece = rest.readSlice(length: Self.pieceBytes) {
            send(.init(data: .byteBuffer(piece)), context: context, promise: nil)
        }
        var last = frame
        last.data = .byteBuffer(rest)
        send(last, context: context, promise: promise)
        writingPieces = false
        // A piece can make the stream unwritable, and gRPC's stream handler flushes at once when it
        // does (from inside this write). That flush was meant for the whole write: the pieces
        // after it go too. Without this, a unary answer's tail waited for its trailers, which wait
        // for the stream to be writable again: the call hung until the stall timeout ended it.
        if flushedMidWrite {
            flushedMidWrite = false
            context.flush()
        }
    }

    func flush(context: ChannelHandlerContext) {
        if writingPieces { flushedMidWrite = true }
        context.flush()
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
}
