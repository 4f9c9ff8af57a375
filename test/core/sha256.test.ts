import { describe, it } from "vitest";
import { checkSha256AgreesWithTheOldDigests } from "./sha256-cases";

describe("sha256 (Node, as the simulator runs it)", () => {
  it("gives the digests @noble/hashes gave, whole and streamed, lone surrogates included", () => {
    checkSha256AgreesWithTheOldDigests();
  });
});
