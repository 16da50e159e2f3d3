import BoxcarAPI
import BoxcarClient
import BoxcarModel
import Crypto
import Foundation
import GRPCCore
import SwiftProtobuf
import Testing
import BoxcarTestSupport

/// Every RPC of `modelbox.ModelStore` against a real agent on a unix socket, through the
/// generated Swift client, bad input included.
@Suite struct ModelStoreEndToEndTests {
    let directory = TemporaryDirectory()

    func code(_ expected: RPCError.Code) -> @Sendable (any Error) -> Bool {
        { ($0 as? RPCError)?.code == expected }
    }

    @Test func experimentsAreIdempotentAndNamespaced() async throws {
        try await withAgent(in: directory) { client in
            let store = client.modelStore
            let request = Modelbox_CreateExperimentRequest.with {
                $0.name = "mnist-baseline"
                $0.namespace = "vision"
                $0.owner = "ada"
                $0.framework = .pytorch
                $0.externalID = "ext-1"
                $0.metadata = Modelbox_Metadata(["lr": .number(0.01)])
            }
            let first = try await store.createExperiment(request)
            let second = try await store.createExperiment(request)
            #expect(first.experimentID == "28e9819e3dd5a9dd02e4dc8b2864853d6ee0d9cf")
            #expect(!first.experimentExists)
            #expect(second.experimentExists)
            #expect(second.experimentID == first.experimentID)
            #expect(first.createdAt.seconds > 0)

            let experiment = try await store.getExperiment(.with { $0.id = first.experimentID }).experiment
            #expect(experiment.name == "mnist-baseline")
            #expect(experiment.namespace == "vision")
            #expect(experiment.owner == "ada")
            #expect(experiment.framework == .pytorch)
            #expect(experiment.externalID == "ext-1")
            #expect(experiment.id == first.experimentID)

            _ = try await store.createExperiment(.with { $0.name = "other"; $0.namespace = "audio" })
            let vision = try await store.listExperiments(.with { $0.namespace = "vision" })
            #expect(vision.experiments.map(\.name) == ["mnist-baseline"])
            let metadata = try await store.listMetadata(.with { $0.parentID = first.experimentID })
            #expect(metadata.metadata == ["lr": JSONValue.number(0.01).protobuf])

            await #expect(performing: { try await store.getExperiment(.with { $0.id = "nope" }) }, throws: code(.notFound))
            await #expect(
                performing: { try await store.createExperiment(.with { $0.name = String(repeating: "x", count: 300) }) },
                throws: code(.invalidArgument))
            await #expect(performing: { try await store.createExperiment(.with { $0.namespace = "n" }) }, throws: code(.invalidArgument))
        }
    }

    @Test func metadataComesBackExactlyAsSent() async throws {
        try await withAgent(in: directory) { client in
            let store = client.modelStore
            let id = try await store.createExperiment(.with { $0.name = "m"; $0.namespace = "n" }).experimentID
            let nested: [String: JSONValue] = [
                "optimizer": .object(["name": .string("adam"), "betas": .array([.number(0.9), .number(0.999)])]),
                "layers": .array([.object(["units": .number(128), "dropout": .null]), .bool(true)]),
                "note": .string("héllo \"world\""),
            ]
            let update = try await store.updateMetadata(.with {
                $0.parentID = id
                $0.metadata = Modelbox_Metadata(nested)
            })
            #expect(update.numKeysWritten == 3)
            #expect(update.updatedAt.seconds > 0)
            _ = try await store.updateMetadata(.with {
                $0.parentID = id
                $0.metadata = Modelbox_Metadata(["note": .string("second write wins")])
            })
            let listed = try await store.listMetadata(.with { $0.parentID = id }).metadata
            var expected = nested
            expected["note"] = .string("second write wins")
            #expect(listed == expected.protobuf)

            await #expect(
                performing: { try await store.updateMetadata(.with { $0.parentID = "nope"; $0.metadata = Modelbox_Metadata(["a": .null]) }) },
                throws: code(.notFound))
            await #expect(performing: { try await store.listMetadata(.with { $0.parentID = "nope" }) }, throws: code(.notFound))
            await #expect(
                performing: { try await store.updateMetadata(.with { $0.parentID = id; $0.metadata = Modelbox_Metadata(["": .null]) }) },
                throws: code(.invalidArgument))
        }
    }

    @Test func metricsKeepEveryValueOrderedByStepWallclockArrival() async throws {
        try await withAgent(in: directory) { client in
            let store = client.modelStore
            let id = try await store.createExperiment(.with { $0.name = "m"; $0.namespace = "n" }).experimentID
            func log(_ key: String, _ step: UInt64, _ wallclock: UInt64, _ value: Modelbox_MetricsValue.OneOf_Value) async throws {
                _ = try await store.logMetrics(.with {
                    $0.parentID = id
                    $0.key = key
                    $0.value = .with { $0.step = step; $0.wallclockTime = wallclock; $0.value = value }
                })
            }
            try await log("loss", 2, 1_700_000_002, .fVal(0.5))
            try await log("loss", 1, 1_700_000_001, .fVal(0.9))
            try await log("loss", 2, 1_700_000_002, .fVal(0.4))  // a repeat of step 2: kept, after the first
            try await log("sample", 1, 7, .sTensor("the cat"))
            try await log("image", 1, 7, .bTensor(Data([0, 1, 255])))

            let metrics = try await store.getMetrics(.with { $0.parentID = id }).metrics
            #expect(metrics.map(\.key) == ["image", "loss", "sample"])
            let loss = metrics[1].values
            #expect(loss.map(\.step) == [1, 2, 2])
            #expect(loss.map(\.wallclockTime) == [1_700_000_001, 1_700_000_002, 1_700_000_002])
            #expect(loss.map(\.fVal) == [0.9, 0.5, 0.4])
            #expect(metrics[2].values.first?.sTensor == "the cat")
            #expect(metrics[0].values.first?.bTensor == Data([0, 1, 255]))

            await #expect(
                performing: { try await store.logMetrics(.with { $0.parentID = id; $0.key = "loss"; $0.value = .with { $0.step = 1 } }) },
                throws: code(.invalidArgument))
            await #expect(
                performing: { try await store.logMetrics(.with { $0.parentID = "nope"; $0.key = "loss"; $0.value = .with { $0.fVal = 1 } }) },
                throws: code(.notFound))
            await #expect(performing: { try await store.getMetrics(.with { $0.parentID = "nope" }) }, throws: code(.notFound))
        }
    }

    @Test func eventsComeBackOldestFirstAndFilterBySince() async throws {
        try await withAgent(in: directory) { client in
            let store = client.modelStore
            let id = try await store.createExperiment(.with { $0.name = "m"; $0.namespace = "n" }).experimentID
            for (name, seconds) in [("epoch-end", Int64(200)), ("start", Int64(100))] {
                let logged = try await store.logEvent(.with {
                    $0.parentID = id
                    $0.event = .with {
                        $0.name = name
                        $0.source = .with { $0.name = "trainer" }
                        $0.wallclockTime = .init(seconds: seconds, nanos: 5)
                        $0.metadata = Modelbox_Metadata(["epoch": .number(Double(seconds))])
                    }
                })
                #expect(logged.createdAt.seconds > 0)
            }
            let events = try await store.listEvents(.with { $0.parentID = id }).events
            #expect(events.map(\.name) == ["start", "epoch-end"])
            #expect(events[0].source.name == "trainer")
            #expect(events[0].wallclockTime == .init(seconds: 100, nanos: 5))
            #expect(events[0].metadata.metadata == ["epoch": JSONValue.number(100).protobuf])
            let since = try await store.listEvents(.with { $0.parentID = id; $0.since = .init(seconds: 150, nanos: 0) })
            #expect(since.events.map(\.name) == ["epoch-end"])
            await #expect(
                performing: { try await store.logEvent(.with { $0.parentID = "nope"; $0.event = .with { $0.name = "x" } }) },
                throws: code(.notFound))
        }
    }

    @Test func uploadsAreStoredByContentAndDownloadByteIdentical() async throws {
        try await withAgent(in: directory) { client in
            let store = client.modelStore
            let id = try await store.createExperiment(.with { $0.name = "m"; $0.namespace = "n" }).experimentID
            var generator = SystemRandomNumberGenerator()
            let bytes = Data((0..<300_000).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let md5 = Insecure.MD5.hash(data: bytes).hexString
            let uploadPath = "/home/ada/../../etc/passwd"  // recorded, never used to place bytes
            let fileID = try await store.uploadFile(
                requestProducer: { writer in
                    try await writer.write(.with {
                        $0.metadata = .with { $0.parentID = id; $0.fileType = .model; $0.checksum = md5; $0.path = uploadPath }
                    })
                    for start in stride(from: 0, to: bytes.count, by: 64 * 1024) {
                        try await writer.write(.with { $0.chunks = bytes[start..<min(start + 64 * 1024, bytes.count)] })
                    }
                },
                onResponse: { try $0.message.fileID })
            #expect(!fileID.isEmpty)
            let tracked = try await store.trackArtifacts(.with {
                $0.files = [.with { $0.parentID = id; $0.path = "/data/train.csv"; $0.checksum = "abc"; $0.fileType = .text }]
            })
            #expect(tracked.numFilesTracked == 1)

            let files = try await store.listArtifacts(.with { $0.parentID = id }).files
            #expect(files.map(\.path) == [uploadPath, "/data/train.csv"])
            #expect(files[0].id == fileID)
            #expect(files[0].checksum == md5)
            #expect(files[0].fileType == .model)
            #expect(files.allSatisfy { $0.parentID == id && !$0.id.isEmpty })

            let (metadata, downloaded) = try await store.downloadFile(.with { $0.fileID = fileID }) { response in
                var metadata: Modelbox_FileMetadata?
                var data = Data()
                for try await frame in response.messages {
                    switch frame.streamFrame {
                    case .metadata(let value): metadata = value
                    case .chunks(let chunk): data += chunk
                    case nil: break
                    }
                }
                return (metadata, data)
            }
            #expect(metadata?.checksum == md5)
            #expect(metadata?.id == fileID)
            #expect(downloaded == bytes)
            // Stored by content under the artifacts directory, nowhere near the path sent.
            let sha = SHA256.hash(data: bytes).hexString
            #expect(FileManager.default.fileExists(atPath: directory.file("data/artifacts/blobs/\(sha.prefix(2))/\(sha)")))

            await #expect(
                performing: { try await store.downloadFile(.with { $0.fileID = files[1].id }) { for try await _ in $0.messages {} } },
                throws: code(.failedPrecondition))
            await #expect(performing: { try await store.downloadFile(.with { $0.fileID = "nope" }) { for try await _ in $0.messages {} } }, throws: code(.notFound))
        }
    }

    @Test func refusedUploadsLeaveNothingBehind() async throws {
        var limits = Limits()
        limits.maxUploadBytes = 1000
        try await withAgent(in: directory, limits: limits) { client in
            let store = client.modelStore
            let id = try await store.createExperiment(.with { $0.name = "m"; $0.namespace = "n" }).experimentID
            func upload(metadataFirst: Bool = true, checksum: String = "", size: Int, parent: String? = nil) async throws {
                _ = try await store.uploadFile(
                    requestProducer: { writer in
                        if metadataFirst {
                            try await writer.write(.with {
                                $0.metadata = .with { $0.parentID = parent ?? id; $0.checksum = checksum; $0.path = "/x" }
                            })
                        }
                        try await writer.write(.with { $0.chunks = Data(repeating: 7, count: size) })
                    },
                    onResponse: { try $0.message })
            }
            await #expect(performing: { try await upload(metadataFirst: false, size: 10) }, throws: code(.invalidArgument))
            await #expect(performing: { try await upload(checksum: String(repeating: "0", count: 32), size: 10) }, throws: code(.invalidArgument))
            await #expect(performing: { try await upload(size: 1001) }, throws: { error in
                guard let error = error as? RPCError else { return false }
                return error.code == .resourceExhausted && Array(error.metadata[stringValues: "boxcar-reason"]) == ["limit"]
            })
            await #expect(performing: { try await upload(size: 10, parent: "nope") }, throws: code(.notFound))
            #expect(try await store.listArtifacts(.with { $0.parentID = id }).files.isEmpty)
            let blobs = try FileManager.default.subpathsOfDirectory(atPath: directory.file("data/artifacts/blobs"))
            let incoming = try FileManager.default.contentsOfDirectory(atPath: directory.file("data/artifacts/incoming"))
            #expect(blobs.isEmpty)
            #expect(incoming.isEmpty)
            // A correct SHA-256 checksum is verified and accepted; one that is neither MD5 nor
            // SHA-256 is recorded as sent, unverified.
            let sha = SHA256.hash(data: Data(repeating: 7, count: 10)).hexString
            try await upload(checksum: sha.uppercased(), size: 10)
            try await upload(checksum: "sha1:not-checked", size: 10)
            let files = try await store.listArtifacts(.with { $0.parentID = id }).files
            #expect(files.map(\.checksum) == [sha.uppercased(), "sha1:not-checked"])
        }
    }

    @Test func checkpointsModelsVersionsAndMembers() async throws {
        try await withAgent(in: directory) { client in
            let store = client.modelStore
            let id = try await store.createExperiment(.with { $0.name = "m"; $0.namespace = "n" }).experimentID
            let created = try await store.createCheckpoint(.with {
                $0.experimentID = id
                $0.epoch = 3
                $0.metrics = ["loss": 0.25, "acc": 0.9]
                $0.files = [.with { $0.path = "/ckpt/3.pt"; $0.fileType = .checkpoint; $0.checksum = "c" }]
                $0.metadata = Modelbox_Metadata(["best": .bool(true)])
            })
            #expect(!created.checkpointID.isEmpty)
            let checkpoint = try await store.getCheckpoint(.with { $0.experimentID = id; $0.epoch = 3 }).checkpoint
            #expect(checkpoint.id == created.checkpointID)
            #expect(checkpoint.experimentID == id)
            #expect(checkpoint.metrics == ["loss": 0.25, "acc": 0.9])
            #expect(checkpoint.files.map(\.path) == ["/ckpt/3.pt"])
            #expect(checkpoint.files[0].parentID == created.checkpointID)
            #expect(try await store.listCheckpoints(.with { $0.experimentID = id }).checkpoints.map(\.epoch) == [3])
            // The checkpoint is a parent in its own right.
            #expect(try await store.listMetadata(.with { $0.parentID = created.checkpointID }).metadata == ["best": JSONValue.bool(true).protobuf])
            await #expect(performing: { try await store.getCheckpoint(.with { $0.experimentID = id; $0.epoch = 4 }) }, throws: code(.notFound))
            await #expect(performing: { try await store.createCheckpoint(.with { $0.experimentID = "nope" }) }, throws: code(.notFound))

            let model = try await store.createModel(.with {
                $0.name = "resnet"; $0.owner = "ada"; $0.namespace = "vision"; $0.task = "classify"
                $0.description_p = "a residual network"
                $0.files = [.with { $0.path = "/models/resnet.onnx" }]
            })
            let models = try await store.listModels(.with { $0.namespace = "vision" }).models
            #expect(models.map(\.id) == [model.id])
            #expect(models[0].description_p == "a residual network")
            #expect(models[0].files.map(\.path) == ["/models/resnet.onnx"])
            for version in ["1", "2"] {
                let created = try await store.createModelVersion(.with {
                    $0.model = model.id; $0.name = "resnet"; $0.version = version; $0.framework = .pytorch
                    $0.uniqueTags = ["v\(version)"]
                })
                #expect(!created.modelVersion.isEmpty)
            }
            let latest = try await store.listModelVersions(.with { $0.model = model.id }).models
            #expect(latest.version == "2")
            #expect(latest.modelID == model.id)
            #expect(latest.uniqueTags == ["v2"])
            await #expect(performing: { try await store.createModelVersion(.with { $0.model = "nope"; $0.version = "1" }) }, throws: code(.notFound))

            let members = try await store.getClusterMembers(.init()).members
            #expect(members.count == 1)
            #expect(members[0].rpcAddr == "unix://" + directory.file("agent.sock"))
            #expect(members[0].id == members[0].hostName + ":" + directory.file("agent.sock"))
            #expect(!members[0].hostName.isEmpty)
        }
    }

    @Test func everythingReadsBackAfterARestart() async throws {
        let id = try await withAgent(in: directory) { client in
            let store = client.modelStore
            let id = try await store.createExperiment(.with { $0.name = "m"; $0.namespace = "n" }).experimentID
            _ = try await store.logMetrics(.with { $0.parentID = id; $0.key = "loss"; $0.value = .with { $0.step = 1; $0.fVal = 0.5 } })
            _ = try await store.updateMetadata(.with { $0.parentID = id; $0.metadata = Modelbox_Metadata(["k": .string("v")]) })
            _ = try await store.logEvent(.with { $0.parentID = id; $0.event = .with { $0.name = "e" } })
            return id
        }
        try await withAgent(in: directory) { (client: AgentClient) async throws in
            let store = client.modelStore
            #expect(try await store.getMetrics(.with { $0.parentID = id }).metrics.first?.values.map(\.fVal) == [0.5])
            #expect(try await store.listMetadata(.with { $0.parentID = id }).metadata == ["k": JSONValue.string("v").protobuf])
            #expect(try await store.listEvents(.with { $0.parentID = id }).events.map(\.name) == ["e"])
            #expect(try await store.createExperiment(.with { $0.name = "m"; $0.namespace = "n" }).experimentExists)
        }
    }
}

@Suite struct ModelStoreWatchAndEdgeTests {
    let directory = TemporaryDirectory()

    @Test func watchReplaysThePastThenStreamsCreationsAndUpdates() async throws {
        try await withAgent(in: directory) { client in
            let store = client.modelStore
            let first = try await store.createExperiment(.with { $0.name = "first"; $0.namespace = "w" }).experimentID
            let seen = try await store.watchNamespace(.with { $0.namespace = "w"; $0.since = 0 }) { response in
                var seen: [(Modelbox_ServerEvent, String)] = []
                for try await change in response.messages {
                    let id = change.payload.structValue.fields["id"]?.stringValue ?? ""
                    seen.append((change.event, id))
                    if seen.count == 1 {
                        _ = try await store.createExperiment(.with { $0.name = "second"; $0.namespace = "w" })
                        _ = try await store.createExperiment(.with { $0.name = "elsewhere"; $0.namespace = "other" })
                    } else if seen.count == 2 {
                        _ = try await store.updateMetadata(.with {
                            $0.parentID = first
                            $0.metadata = Modelbox_Metadata(["k": .bool(true)])
                        })
                    } else {
                        break
                    }
                }
                return seen
            }
            let second = Identifiers.experiment(name: "second", namespace: "w")
            #expect(seen.map(\.0) == [.objectCreated, .objectCreated, .objectUpdated])
            #expect(seen.map(\.1) == [first, second, first])
        }
    }

    @Test func textWithNULAndNonFiniteCheckpointMetricsAreRefused() async throws {
        try await withAgent(in: directory) { client in
            let store = client.modelStore
            let id = try await store.createExperiment(.with { $0.name = "m"; $0.namespace = "n" }).experimentID
            await #expect(performing: {
                try await store.trackArtifacts(.with { $0.files = [.with { $0.parentID = id; $0.path = "/a\u{0}b" }] })
            }, throws: { ($0 as? RPCError)?.code == .invalidArgument })
            await #expect(performing: {
                try await store.createCheckpoint(.with { $0.experimentID = id; $0.epoch = 1; $0.metrics = ["loss": .nan] })
            }, throws: { ($0 as? RPCError)?.code == .invalidArgument })
            #expect(try await store.listArtifacts(.with { $0.parentID = id }).files.isEmpty)
            #expect(try await store.listCheckpoints(.with { $0.experimentID = id }).checkpoints.isEmpty)
        }
    }
}
