import BoxcarAPI
import BoxcarStore
import FoundationEssentials

// The outbox's rows as the wire carries them (collector.proto): field for field, as stored.

/// The version of the records this agent sends (ForwardHello.record_version). 2: metric blocks
/// may be compressed (block version 2); 3: in block version 3 too (runs and ratios). A collector
/// that reads only older versions refuses the hello with "upgrade the collector", and the agent
/// keeps its records until it is. 4: machine series under OpenTelemetry's names (`SeriesRenames`),
/// which a collector renames for agents of older versions.
public let forwardRecordVersion: UInt32 = 4

extension Boxcar_V1_ForwardRecord {
    init(seq: Int64, row: Store.OutboxRow) {
        self.init()
        self.seq = UInt64(seq)
        switch row {
        case let .experiment(id, name, namespace, owner, framework, task, externalID, createdNs, updatedNs):
            experiment = .with {
                $0.id = id
                $0.name = name
                $0.namespace = namespace
                $0.owner = owner
                $0.framework = framework
                $0.task = task
                $0.externalID = externalID
                $0.createdNs = createdNs
                $0.updatedNs = updatedNs
            }
        case let .metadata(parentID, key, valueJSON, updatedNs):
            metadata = .with {
                $0.parentID = parentID
                $0.key = key
                $0.valueJson = valueJSON
                $0.updatedNs = updatedNs
            }
        case let .metricBlock(parentID, key, count, stepMin, stepMax, wallclockMin, wallclockMax, data):
            metricBlock = .with {
                $0.parentID = parentID
                $0.key = key
                $0.count = UInt32(clamping: count)
                $0.stepMin = stepMin
                $0.stepMax = stepMax
                $0.wallclockMin = wallclockMin
                $0.wallclockMax = wallclockMax
                $0.data = Data(data)
            }
        case let .event(parentID, name, source, wallclockNs, metadataJSON, createdNs):
            event = .with {
                $0.parentID = parentID
                $0.name = name
                $0.source = source
                $0.wallclockNs = wallclockNs
                $0.metadataJson = metadataJSON
                $0.createdNs = createdNs
            }
        case let .file(id, parentID, fileType, checksum, path, blob, size, createdNs, updatedNs):
            file = .with {
                $0.id = id
                $0.parentID = parentID
                $0.fileType = fileType
                $0.checksum = checksum
                $0.path = path
                $0.blob = blob ?? ""
                $0.size = size ?? 0
                $0.createdNs = createdNs
                $0.updatedNs = updatedNs
            }
        case let .attachment(experimentID, pid, attachedNs, detachedNs):
            attachment = .with {
                $0.experimentID = experimentID
                $0.pid = pid
                $0.attachedNs = attachedNs
                $0.detachedNs = detachedNs ?? 0
            }
        case let .model(id, name, owner, namespace, description, task, createdNs, updatedNs):
            model = .with {
                $0.id = id
                $0.name = name
                $0.owner = owner
                $0.namespace = namespace
                $0.description_p = description
                $0.task = task
                $0.createdNs = createdNs
                $0.updatedNs = updatedNs
            }
        case let .modelVersion(id, modelID, name, version, description, framework, uniqueTagsJSON, createdNs, updatedNs):
            modelVersion = .with {
                $0.id = id
                $0.modelID = modelID
                $0.name = name
                $0.version = version
                $0.description_p = description
                $0.framework = framework
                $0.uniqueTagsJson = uniqueTagsJSON
                $0.createdNs = createdNs
                $0.updatedNs = updatedNs
            }
        case let .checkpoint(id, experimentID, epoch, metricsJSON, createdNs, updatedNs):
            checkpoint = .with {
                $0.id = id
                $0.experimentID = experimentID
                $0.epoch = epoch
                $0.metricsJson = metricsJSON
                $0.createdNs = createdNs
                $0.updatedNs = updatedNs
            }
        case let .skipped(fromSeq, records, reason):
            skipped = .with {
                $0.fromSeq = UInt64(fromSeq)
                $0.throughSeq = UInt64(seq)
                $0.records = UInt64(records)
                $0.reason = reason
            }
        }
    }
}

extension Boxcar_V1_UpstreamStatus {
    public init(_ status: UpstreamStatus) {
        self.init()
        target = status.target
        connected = status.connected
        acknowledgedSeq = UInt64(max(0, status.acknowledgedSeq))
        recordsBehind = UInt64(max(0, status.recordsBehind))
        secondsBehind = status.secondsBehind
        lastError = status.lastError ?? ""
        quarantined = UInt64(max(0, status.quarantined))
        skippedRecords = UInt64(max(0, status.skippedRecords))
    }
}
