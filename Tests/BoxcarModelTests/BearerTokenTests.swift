import BoxcarModel
import Testing

@Suite struct BearerTokenTests {
    @Test func theSchemeIsCaseInsensitiveAndTheTokenExact() {
        let token = BearerToken("s3cret")
        for header in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "bEaReR   s3cret"] {
            #expect(token.matches(header), "\(header)")
        }
        for header in ["Bearer s3cret ", "Bearer S3CRET", "Bearers3cret", "Basic s3cret", "s3cret", "Bearer ", "Bearer", "", "Bearer s3cre"] {
            #expect(!token.matches(header), "\(header)")
        }
        #expect(!token.matches(nil))
        #expect(BearerToken.credentials("bearer abc") == "abc")
        #expect(BearerToken.credentials("Token abc") == nil)
    }
}
