import BoxcarModel
import Testing

@Suite struct IdentifiersTests {
    // Expected ids computed independently: python3 -c "import hashlib; print(hashlib.sha1(b'mnist-baseline' + b'vision').hexdigest())"
    @Test func experimentIdIsSHA1OfNameThenNamespace() {
        #expect(Identifiers.experiment(name: "mnist-baseline", namespace: "vision") == "28e9819e3dd5a9dd02e4dc8b2864853d6ee0d9cf")
    }

    @Test func experimentIdHashesUTF8Bytes() {
        #expect(Identifiers.experiment(name: "実験", namespace: "ns") == "1cb02076313d84ed86203ac070f987141a43be7f")
    }

    @Test func kindsOfObjectNeverShareAnId() {
        let experiment = Identifiers.experiment(name: "resnet", namespace: "vision")
        let model = Identifiers.model(name: "resnet", namespace: "vision")
        #expect(experiment != model)
        #expect(Identifiers.checkpoint(experimentID: experiment, epoch: 1)
            != Identifiers.checkpoint(experimentID: experiment, epoch: 2))
    }

    @Test func fileIdsAreRandomHex() {
        let a = Identifiers.randomFileID()
        let b = Identifiers.randomFileID()
        #expect(a != b)
        #expect(a.count == 32)
        #expect(a.allSatisfy { $0.isHexDigit && !$0.isUppercase })
    }
}
