// node --test viewer-light/src/measure.test.js (run by tests/web/test_light_viewer.py)
import test from "node:test";
import assert from "node:assert/strict";
import { angleAt, distance, norbergVerdict, speciesKind, vhs } from "./measure.js";

test("distance is Euclidean in world units", () => {
  assert.equal(distance([0, 0, 0], [30, 40, 0]), 50);
});

test("angle at the vertex in degrees", () => {
  assert.ok(Math.abs(angleAt([10, 0, 0], [0, 0, 0], [0, 10, 0]) - 90) < 1e-9);
  assert.ok(Math.abs(angleAt([10, 0, 0], [0, 0, 0], [-10, 10, 0]) - 135) < 1e-9);
});

test("VHS adds long and short axes in vertebral units and judges by species", () => {
  const dog = vhs({ longAxis: 40, shortAxis: 30, reference: 32, vertebrae: 4, species: "dog" });
  assert.equal(dog.long, 5);
  assert.equal(dog.short, 3.75);
  assert.equal(dog.score, 8.75);
  assert.equal(dog.verdict, "normal");
  const cat = vhs({ longAxis: 40, shortAxis: 30, reference: 32, vertebrae: 4, species: "cat" });
  assert.equal(cat.verdict, "high"); // 8.75 v is above a cat's 6.9-8.1
  assert.equal(vhs({ longAxis: 40, shortAxis: 30, reference: 0 }), null);
});

test("Norberg angle of 105 degrees or more is normal", () => {
  assert.equal(norbergVerdict(105), "normal");
  assert.equal(norbergVerdict(98.5), "low");
  assert.equal(norbergVerdict(NaN), null);
});

test("species words in Chinese and English", () => {
  assert.equal(speciesKind("犬 Canine"), "dog");
  assert.equal(speciesKind("Feline"), "cat");
  assert.equal(speciesKind("Equine"), null);
});
