import BoxcarModel
import GRPCCore
import Synchronization

/// A change to an object of a namespace, as WatchNamespace streams it.
public struct ObjectChange: Sendable {
    public enum Kind: Sendable { case created, updated }
    public var kind: Kind
    public var id: String
    public var namespace: String
    /// The object as JSON: its kind, id and fields.
    public var payload: JSONValue
    public var at: Nanoseconds
}

/// Fans each committed change out to the live WatchNamespace streams of its namespace.
final class ChangeFeed: Sendable {
    private struct Subscriber {
        var namespace: String
        var continuation: AsyncThrowingStream<ObjectChange, any Error>.Continuation
    }

    /// Changes a watcher may fall behind by. Past them its stream ends with RESOURCE_EXHAUSTED after
    /// the changes it holds, rather than holding more or dropping some unsaid: the client watches
    /// again from the time of the last change it got.
    static let backlog = 1_000

    private let subscribers = Mutex<[Int: Subscriber]>([:])
    private let nextID = Atomic<Int>(0)

    /// A stream of the namespace's changes from now on; it ends when the caller stops iterating.
    func subscribe(namespace: String) -> AsyncThrowingStream<ObjectChange, any Error> {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: ObjectChange.self, bufferingPolicy: .bufferingOldest(Self.backlog))
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        subscribers.withLock { $0[id] = Subscriber(namespace: namespace, continuation: continuation) }
        return stream
    }

    func publish(_ change: ObjectChange) {
        let targets = subscribers.withLock { all in
            all.values.filter { $0.namespace == change.namespace }.map(\.continuation)
        }
        for continuation in targets {
            if case .dropped = continuation.yield(change) {
                continuation.finish(throwing: RPCError(
                    code: .resourceExhausted,
                    message: "this watcher fell \(Self.backlog) changes behind: watch again with `since` at the time of the last change it got"))
            }
        }
    }

    /// Ends every stream (shutdown).
    func finishAll() {
        let all = subscribers.withLock { all in
            defer { all.removeAll() }
            return Array(all.values)
        }
        for subscriber in all { subscriber.continuation.finish() }
    }
}

extension ObjectChange {
    static func experiment(_ experiment: Experiment, created: Bool) -> ObjectChange {
        ObjectChange(
            kind: created ? .created : .updated, id: experiment.id, namespace: experiment.namespace,
            payload: .object([
                "kind": .string("experiment"), "id": .string(experiment.id),
                "name": .string(experiment.name), "namespace": .string(experiment.namespace),
                "owner": .string(experiment.owner),
                "framework": .number(Double(experiment.framework.rawValue)),
                "external_id": .string(experiment.externalID),
                "created_at": .number(Double(experiment.createdAt / 1_000_000_000)),
                "updated_at": .number(Double(experiment.updatedAt / 1_000_000_000)),
            ]),
            at: experiment.updatedAt)
    }

    static func model(_ model: Model, created: Bool) -> ObjectChange {
        ObjectChange(
            kind: created ? .created : .updated, id: model.id, namespace: model.namespace,
            payload: .object([
                "kind": .string("model"), "id": .string(model.id), "name": .string(model.name),
                "namespace": .string(model.namespace), "owner": .string(model.owner),
                "description": .string(model.description), "task": .string(model.task),
                "created_at": .number(Double(model.createdAt / 1_000_000_000)),
                "updated_at": .number(Double(model.updatedAt / 1_000_000_000)),
            ]),
            at: model.updatedAt)
    }
}
