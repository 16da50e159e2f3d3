import BoxcarAPI
import BoxcarSampling
import BoxcarSensors

// What Snapshot answers of the sampler's last tick (`boxcar top` reads it). The service adds
// each trainer's experiment name and the points it logged.

extension Boxcar_V1_SnapshotResponse {
    /// The tick as a live view reads it: the machine's readings and each attached trainer's, the
    /// counters as they stand left out (their rates are there). No tick (the sampler gave none
    /// in time): only the host's name and the interval, wallclock 0.
    init(_ snapshot: MachineSnapshot?, interval: Duration, hostName: String) {
        self.init()
        self.hostName = hostName
        sampleIntervalSeconds = interval.seconds
        guard let snapshot else { return }
        wallclock = snapshot.wallclock
        readings = snapshot.host.filter { !$0.isCumulative }.map(Boxcar_V1_Reading.init)
        trainers = snapshot.trainers.map { trainer in
            .with {
                $0.experimentID = trainer.experimentID
                $0.pid = trainer.pid
                $0.processes = UInt32(trainer.processes.count)
                $0.readings = trainer.readings.filter { !$0.isCumulative }.map(Boxcar_V1_Reading.init)
            }
        }
    }
}

extension Boxcar_V1_Reading {
    init(_ reading: Reading) {
        self.init()
        name = reading.name
        labels = Dictionary(reading.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
        value = reading.value
    }
}
