import BoxcarAPI
import BoxcarModel
import BoxcarStore
import GRPCCore
import GRPCProtobuf

/// Serves `modelbox.ModelStore/GetMetrics` with the response written straight from the stored
/// columns (see GetMetricsEncoding). Registered after ModelStoreService, it replaces that
/// method's handler; the answer on the wire is the same.
struct GetMetricsFastPath: RegistrableRPCService {
    let store: Store

    /// An encoded GetMetricsResponse.
    struct Encoded: Sendable {
        var bytes: [UInt8]
    }

    struct Serializer: MessageSerializer {
        func serialize<Bytes: GRPCContiguousBytes>(_ message: Encoded) throws -> Bytes {
            Bytes(message.bytes)
        }
    }

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let store = self.store
        router.registerHandler(
            forMethod: Modelbox_ModelStore.Method.GetMetrics.descriptor,
            deserializer: ProtobufDeserializer<Modelbox_GetMetricsRequest>(),
            serializer: Serializer(),
            handler: { request, context in
                let single = try await ServerRequest(stream: request)
                let encoded = try await handling {
                    let series = try await store.metrics(parentID: single.message.parentID)
                    return Encoded(bytes: GetMetricsEncoding.encode(series))
                }
                return StreamingServerResponse(single: ServerResponse(message: encoded))
            })
    }
}
