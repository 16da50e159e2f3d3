import BoxcarFlowControl
import NIOCore
import NIOHTTP2
import Synchronization

// Flow control for what clients send. gRPC's transport assembles each request message whole (up
// to the 64 MiB message limit) before a call sees it, and keeps a few whole ones for a call that
// has not asked yet: bytes no handler had counted, on every stream of every connection. So each
// stream counts its messages in the agent's budget of request bytes held for clients (half of
// `--ingest-memory-bytes`) from the moment a message's length is read until its call takes it
// (StreamFlowInterceptor) or ends, and a stream whose next message does not fit stops reading:
// HTTP/2 flow control then keeps the rest with the client.
//
// A message is counted whole when its length is read, not as its bytes come, so that a stream
// that began one can always finish it: streams waiting for room hold nothing, and streams that
// hold room are never waiting for it. A message no larger than a stream's HTTP/2 window is let in
// even when the budget is spent (its bytes are held by the transport either way), so small calls
// go on while large batches wait. A stream that began a message and then sends nothing of it for
// the stall timeout, while the agent asks for more, is ended, so a client cannot hold room for long
// by naming a large message it never sends. (One that sends a byte a minute can: the budget is
// shared by every local client, who could as well fill it with real data.)

/// What one stream's requests hold of the budget: the messages counted and not yet taken by the
/// call, in order.
final class InboundLedger: Sendable {
    let budget: ByteBudget
    private let counted = Mutex(CircularBuffer<Int>())

    init(budget: ByteBudget) {
        self.budget = budget
    }

    /// A message of `bytes` arrives.
    func count(_ bytes: Int) {
        counted.withLock { $0.append(bytes) }
        budget.take(bytes)
    }

    /// A message of `bytes` arrives if the budget has room now; false, counting nothing, if not.
    func countIfRoom(_ bytes: Int) -> Bool {
        guard budget.takeIfRoom(bytes) else { return false }
        counted.withLock { $0.append(bytes) }
        return true
    }

    /// The call took its next message: what it holds now is the call's to count.
    func taken() {
        if let bytes = counted.withLock({ $0.popFirst() }) { budget.release(bytes) }
    }

    /// The stream ended: whatever it still counts is given back.
    func close() {
        budget.release(counted.withLock { counted in
            defer { counted.removeAll() }
            return counted.reduce(0, +)
        })
    }
}

/// Sits on each HTTP/2 stream, next to the connection: it names the stream in its request, counts
/// each request message into the budget as its length arrives, holds the stream's frames and its
/// reads while the budget has no room for the next message, ends a stream that stops sending in
/// the middle of a message, and gives back what the stream counts once its call has answered (a
/// refused call never takes its messages; the transport drops what comes after).
final class InboundFlowHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// Messages up to this size are let in whatever the budget holds: the transport's HTTP/2
    /// window for a stream (grpc-swift's default).
    static let alwaysAdmitted = (1 << 16) - 1

    private let ledger: InboundLedger
    private let number: UInt64
    private let stallTimeout: TimeAmount
    private let stalled: @Sendable () -> Void
    private var named = false
    private var framing = GRPCFraming()
    /// What arrived while the stream waits for room, in order; whether the channel asked to read
    /// meanwhile; the wait itself.
    private var held = CircularBuffer<HTTP2Frame.FramePayload>()
    private var readWanted = false
    private var waiting: Task<Void, Never>?
    private var removed = false
    /// The call has answered: nothing more is counted or held.
    private var answered = false
    /// When the last bytes came, and whether a read has gone down since (without one, the call is
    /// not asking for more, and a silent client is not stalling).
    private var lastData = NIODeadline.now()
    private var readOutstanding = false
    private var notAskingSince: NIODeadline?
    private var check: Scheduled<Void>?

    init(ledger: InboundLedger, number: UInt64, stallTimeout: Duration, stalled: @escaping @Sendable () -> Void) {
        self.ledger = ledger
        self.number = number
        self.stallTimeout = .nanoseconds(Int64(stallTimeout / .nanoseconds(1)))
        self.stalled = stalled
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        removed = true
        waiting?.cancel()
        waiting = nil
        held.removeAll()
        check?.cancel()
        ledger.close()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        if readOutstanding { notAskingSince = .now() }
        readOutstanding = false
        if waiting != nil {
            held.append(payload)
        } else {
            receive(payload, context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if waiting != nil {
            readWanted = true
            return
        }
        // The time the call did not ask is not the client's silence: the clock moves on by it.
        if !readOutstanding, let since = notAskingSince { lastData = lastData + (.now() - since) }
        notAskingSince = nil
        readOutstanding = true
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .headers(let headers) = unwrapOutboundIn(data), headers.endStream, !answered {
            answered = true
            ledger.close()
            if let wait = waiting {
                // What was held goes on (uncounted) once this write is done, not from inside it.
                wait.cancel()
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.execute {
                    let (handler, context) = bound.value
                    handler.resume(context: context)
                }
            }
        }
        context.write(data, promise: promise)
    }

    /// Passes `payload` on, or as much of it as comes before a message the budget has no room for
    /// (the rest waits, first in `held`).
    private func receive(_ payload: HTTP2Frame.FramePayload, context: ChannelHandlerContext) {
        switch payload {
        case .headers(var headers) where !named:
            named = true
            headers.headers.remove(name: StreamFlows.header)
            headers.headers.add(name: StreamFlows.header, value: String(number))
            context.fireChannelRead(wrapInboundOut(.headers(headers)))
        case .data(let frame):
            guard !answered, case .byteBuffer(let buffer) = frame.data else {
                context.fireChannelRead(wrapInboundOut(payload))
                return
            }
            if buffer.readableBytes > 0 { lastData = .now() }
            var rest = buffer
            var ended = 0
            while let size = framing.next(in: &rest, ended: &ended) {
                if size <= Self.alwaysAdmitted {
                    ledger.count(size)
                } else if !ledger.countIfRoom(size) {
                    let before = rest.readerIndex - buffer.readerIndex
                    if before > 0, let head = buffer.getSlice(at: buffer.readerIndex, length: before) {
                        context.fireChannelRead(wrapInboundOut(.data(.init(data: .byteBuffer(head)))))
                    }
                    var tail = frame
                    tail.data = .byteBuffer(rest)
                    held.prepend(.data(tail))
                    waitForRoom(context: context)
                    return
                }
                framing.enter(&rest, size: size, ended: &ended)
            }
            if framing.inMessage && check == nil { scheduleCheck(context: context, at: lastData + stallTimeout) }
            context.fireChannelRead(wrapInboundOut(payload))
        default:
            context.fireChannelRead(wrapInboundOut(payload))
        }
    }

    private func waitForRoom(context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let budget = ledger.budget
        waiting = Task {
            try? await budget.waitForRoom()
            loop.execute {
                let (handler, context) = bound.value
                handler.resume(context: context)
            }
        }
    }

    /// Room in the budget: what was held goes on, until a message finds none again.
    private func resume(context: ChannelHandlerContext) {
        guard !removed, waiting != nil else { return }
        waiting = nil
        var passed = false
        while waiting == nil, let payload = held.popFirst() {
            receive(payload, context: context)
            passed = true
        }
        if passed { context.fireChannelReadComplete() }
        if waiting == nil && readWanted {
            readWanted = false
            read(context: context)
        }
    }

    /// Ends the stream when a message it began gets no byte for the stall timeout while the agent
    /// asks for more (a stream waiting for room, or whose call is not reading, is the agent's
    /// doing, not the client's).
    private func scheduleCheck(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let loop = context.eventLoop.assumeIsolated()
        let context = NIOLoopBound(context, eventLoop: context.eventLoop)
        check = loop.scheduleTask(deadline: deadline) {
            self.check = nil
            guard self.framing.inMessage, !self.removed, !self.answered else { return }
            // Not reading (waiting for room, or the call not asking): the clock starts again.
            if self.waiting != nil || !self.readOutstanding { self.lastData = .now() }
            let due = self.lastData + self.stallTimeout
            guard NIODeadline.now() >= due else {
                self.scheduleCheck(context: context.value, at: due)
                return
            }
            self.stalled()
            context.value.close(promise: nil)
        }
    }
}
