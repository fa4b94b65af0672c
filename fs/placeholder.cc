// placeholder until the ops table lands
