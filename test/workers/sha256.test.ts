import { describe, it } from "vitest";
import { checkSha256AgreesWithTheOldDigests } from "../core/sha256-cases";

describe("sha256 (workerd's node:crypto, as the nodes run it)", () => {
  it("gives the digests @noble/hashes gave, whole and streamed, lone surrogates included", () => {
    checkSha256AgreesWithTheOldDigests();
  });
});
