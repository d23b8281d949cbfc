"""Well-known phrases that make predictable FlexPass keys even though they are long.

zxcvbn scores "correcthorsebatterystaple" or "TheQuickBrownFox" as very strong because it sees
independent dictionary words; an attacker's phrase list (song titles, proverbs, quotes, password
memes) guesses them in a few thousand tries. FlexPass keys are articulations of a phrase, so this
gap matters: these phrases are treated as single dictionary entries (see ``strength.py``).

Entries are compared after normalisation (lowercase letters and digits only, common l33t
substitutions undone).
"""

COMMON_PHRASES: tuple[str, ...] = (
    # password memes and defaults
    "correct horse battery staple", "let me in", "open sesame", "trust no one", "i love you",
    "i love you so much", "password", "change me", "change this password", "my password",
    "this is my password", "secret password", "super secret", "not a password", "hello world",
    "welcome to the jungle", "welcome home", "let me in please", "god bless america",
    "in god we trust", "jesus loves me", "jesus is lord", "god is good", "praise the lord",
    # pangrams and typing drills
    "the quick brown fox jumps over the lazy dog", "the quick brown fox",
    "pack my box with five dozen liquor jugs", "lorem ipsum dolor sit amet",
    "all work and no play makes jack a dull boy",
    # films and television
    "may the force be with you", "use the force luke", "i am your father", "winter is coming",
    "you shall not pass", "to infinity and beyond", "houston we have a problem",
    "here is looking at you kid", "e t phone home", "i will be back", "hasta la vista baby",
    "life is like a box of chocolates", "there is no place like home", "show me the money",
    "you can not handle the truth", "keep calm and carry on", "keep calm", "live long and prosper",
    "beam me up scotty", "i see dead people", "why so serious", "the winter is coming",
    "a long time ago in a galaxy far far away", "one ring to rule them all", "my precious",
    "valar morghulis", "expecto patronum", "wingardium leviosa", "mischief managed",
    "i solemnly swear that i am up to no good", "the cake is a lie", "do or do not there is no try",
    "just keep swimming", "hakuna matata", "let it go", "bond james bond", "elementary my dear watson",
    "frankly my dear i do not give a damn", "go ahead make my day", "you talking to me",
    "i am the one who knocks", "say hello to my little friend", "nobody puts baby in a corner",
    "the truth is out there", "resistance is futile", "to be continued", "game over",
    # literature, proverbs and sayings
    "to be or not to be", "to be or not to be that is the question", "carpe diem", "veni vidi vici",
    "et tu brute", "all that glitters is not gold", "knowledge is power", "time is money",
    "the early bird catches the worm", "an apple a day keeps the doctor away",
    "better late than never", "practice makes perfect", "no pain no gain", "actions speak louder than words",
    "beauty is in the eye of the beholder", "home sweet home", "once upon a time",
    "happily ever after", "the end", "it was a dark and stormy night", "call me ishmael",
    "it was the best of times it was the worst of times", "i think therefore i am",
    "cogito ergo sum", "love conquers all", "amor vincit omnia", "seize the day", "you only live once",
    "yolo", "hakuna matata it means no worries", "live laugh love", "live love laugh",
    "dream big", "never give up", "never say never", "follow your dreams", "just do it",
    "think different", "i am lovin it", "because you are worth it", "impossible is nothing",
    "the best things in life are free", "all you need is love", "love is all you need",
    "what goes around comes around", "every cloud has a silver lining", "when in rome",
    "rome was not built in a day", "all roads lead to rome", "see naples and die",
    "the pen is mightier than the sword", "money can not buy happiness", "less is more",
    "good things come to those who wait", "slow and steady wins the race", "curiosity killed the cat",
    "let sleeping dogs lie", "a picture is worth a thousand words", "where there is a will there is a way",
    "first come first served", "two heads are better than one", "out of sight out of mind",
    "ignorance is bliss", "honesty is the best policy", "laughter is the best medicine",
    "health is wealth", "first do no harm", "do no harm", "physician heal thyself",
    "an ounce of prevention is worth a pound of cure", "the patient comes first",
    # nursery rhymes and songs
    "mary had a little lamb", "twinkle twinkle little star", "humpty dumpty sat on a wall",
    "baa baa black sheep", "jack and jill went up the hill", "old macdonald had a farm",
    "row row row your boat", "happy birthday to you", "we will rock you", "we are the champions",
    "bohemian rhapsody", "is this the real life", "let it be", "hey jude", "yesterday",
    "imagine all the people", "stairway to heaven", "highway to hell", "smells like teen spirit",
    "never gonna give you up", "never gonna let you down", "hotel california", "sweet child of mine",
    "another brick in the wall", "born in the usa", "like a rolling stone", "hit me baby one more time",
    "somewhere over the rainbow", "what a wonderful world", "dancing queen", "money money money",
    "i will always love you", "my heart will go on", "don't stop believin", "livin on a prayer",
    "god save the queen", "god save the king", "rule britannia", "auld lang syne", "jingle bells",
    "silent night", "we wish you a merry christmas", "merry christmas", "happy new year",
    # places and everyday phrases
    "places we visited in europe", "i love paris", "i love new york", "i love london",
    "london bridge is falling down", "paris is always a good idea", "see you later alligator",
    "good morning", "good night", "thank you very much", "how are you", "nice to meet you",
    "one two three four", "one two three four five six", "monday tuesday wednesday",
    "january february march", "red green blue", "north east south west", "abc easy as 123",
)
